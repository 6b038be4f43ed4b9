"""The ``retrain`` command line.

A user's mistake (bad config, bad data, unknown model) prints one line and exits with 2;
``--json`` prints exactly one JSON document on stdout; progress goes to stderr.

Each command lives in the module of its subject and imports what it needs when it runs, so
``retrain --help`` and the registry commands start without loading the modelling and drift
libraries. The orchestrator (Prefect) is handed in by the console script
(``retrain_prefect.cli``); this package never imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from retrain.cli import backtest, drift, experiments, notify, pipeline, predict, registry, serve
from retrain.cli.orchestrator import Orchestrator
from retrain.cli.output import setup_logging
from retrain.errors import RetrainError

log = logging.getLogger("retrain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrain", description="Retrain tabular models when their data changes, and watch, "
        "compare, promote, serve and roll them out.")
    config_help = "path to retrain.toml (default: $RETRAIN_CONFIG or ./retrain.toml)"
    parser.add_argument("--config", help=config_help)
    # Also accepted after the command (`retrain models --config ws/retrain.toml`); SUPPRESS
    # keeps a --config given before the command when none follows it.
    workspace_options = argparse.ArgumentParser(add_help=False)
    workspace_options.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (pipeline, registry, predict, notify, drift, backtest, experiments, serve):
        module.register(sub, workspace_options)
    return parser


def main(argv: list[str] | None = None, *, orchestrator: Orchestrator | None = None) -> int:
    """Run one command; returns the exit status. ``orchestrator`` runs pipelines and answers
    approvals (without one, ``retrain run`` needs ``--local``)."""
    args = build_parser().parse_args(argv)
    args.orchestrator = orchestrator
    saved_logging = (log.handlers[:], log.level, log.propagate)
    setup_logging(args.verbose)
    saved_config = os.environ.get("RETRAIN_CONFIG")
    if args.config:
        # Code that finds the config by itself (the Python API, flows) sees the same file.
        os.environ["RETRAIN_CONFIG"] = str(Path(args.config).resolve())
    try:
        return args.func(args)
    except RetrainError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `retrain models | head -1`: the reader has all it wanted
        _discard_stdout()
        return 0
    except OSError as exc:  # an unwritable --output, a missing folder: the user's to fix
        if args.verbose:
            raise
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retrain: interrupted", file=sys.stderr)
        return 130
    finally:
        # main() is also called in-process (tests, scripts): leave the environment and the
        # "retrain" logger as found.
        if saved_config is None:
            os.environ.pop("RETRAIN_CONFIG", None)
        else:
            os.environ["RETRAIN_CONFIG"] = saved_config
        log.handlers, log.propagate = saved_logging[0], saved_logging[2]
        log.setLevel(saved_logging[1])


def _discard_stdout() -> None:
    """What is left in stdout's buffer goes nowhere (flushing it at exit would raise again)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in a test)
        pass
