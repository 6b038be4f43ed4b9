"""`retrain run` and `retrain demo`: pipeline runs, through the orchestrator or ``--local``."""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from retrain.cli.orchestrator import Orchestrator, require
from retrain.cli.output import print_json
from retrain.errors import RetrainError
from retrain.pipeline.reasons import REASONS

if TYPE_CHECKING:
    from retrain.pipeline.document import RunDocument

log = logging.getLogger("retrain")
DEMO_MARKER = ".retrain-demo"
def run_pipeline(args: argparse.Namespace, config: str | None, models: list[str] | None,
                 force: bool, reason: str) -> "RunDocument":
    """One run: the orchestrator's (the default), or the library's own with ``--local``."""
    if args.engine == "local":
        from retrain.pipeline import run_pipeline as run_locally
        from retrain.workspace import Workspace
        return run_locally(Workspace.open(config), models, force=force, reason=reason)
    from retrain.config import load_config
    load_config(config)  # a bad config is a one-line error before any orchestrator starts
    orchestrator: Orchestrator = require(args.orchestrator, "a pipeline run without --local")
    return orchestrator.run_pipeline(config, models, force, reason)


def cmd_run(args: argparse.Namespace) -> int:
    from retrain.reporting.run import run_summary_text
    document = run_pipeline(args, args.config, args.model, args.force, args.reason)
    if args.json:
        print_json(document.to_dict())
    else:
        print(run_summary_text(document))
    return 0 if document.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from retrain.demo import append_drifted_month, write_workspace
    from retrain.reporting.run import run_summary_text
    workspace = Path(args.workspace).resolve()
    if workspace.exists() and not workspace.is_dir():
        raise RetrainError(f"{workspace} exists and is not a folder; choose another --workspace")
    if workspace.exists() and any(workspace.iterdir()):
        if not (workspace / DEMO_MARKER).exists():
            raise RetrainError(f"{workspace} exists and is not a demo workspace; "
                               "choose another --workspace")
        shutil.rmtree(workspace)
    started = time.monotonic()
    target = {"binary": "who defaults", "multiclass": "the risk grade",
              "regression": "the amount lost"}[args.task]
    log.info("writing the demo workspace to %s (6 months of loan applications; the models "
             "predict %s)", workspace, target)
    config = write_workspace(workspace, task=args.task)
    (workspace / DEMO_MARKER).write_text("made by `retrain demo`; safe to delete\n")
    log.info("run 1: bootstrap the production models on January-June")
    first = run_pipeline(args, str(config), None, False, "manual")
    log.info("appending July: the applicants and what predicts %s have changed", target)
    append_drifted_month(workspace)
    log.info("run 2: the monthly run finds the drift and retrains")
    second = run_pipeline(args, str(config), None, False, "schedule")
    print("\n== Run 1: bootstrap ==\n" + run_summary_text(first))
    print("\n== Run 2: after the drift ==\n" + run_summary_text(second))
    print(f"\nDone in {time.monotonic() - started:.0f}s. Next: cd {args.workspace} && retrain models")
    return 0 if first.success and second.success else 1


def _engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", dest="engine", action="store_const", const="local",
                   default="orchestrator", help="run the library steps directly, without Prefect")


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `demo` and `run` to the `retrain` parser."""
    p = sub.add_parser("demo", help="write a demo workspace and run the pipeline in it")
    p.add_argument("--workspace", default="demo", help="folder to create (default: ./demo)")
    p.add_argument("--task", default="binary", choices=["binary", "multiclass", "regression"],
                   help="what the models predict: default or not (binary, the default), the "
                        "risk grade A-D (multiclass), the amount lost (regression)")
    _engine_flag(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", parents=[workspace_options], help="one pipeline run in the current workspace")
    p.add_argument("--model", action="append", help="model name (repeatable; default: all)")
    p.add_argument("--force", action="store_true", help="retrain even if no trigger fires")
    p.add_argument("--reason", default="manual", choices=REASONS)
    p.add_argument("--json", action="store_true", help="print the run document as JSON")
    _engine_flag(p)
    p.set_defaults(func=cmd_run)
