"""Orchestration overhead: the demo pipeline under Prefect vs the same library calls made directly.

    .venv/bin/python bench/pipeline.py [--rounds 3] [--with-subflow-heartbeats]

Each round builds identical demo workspaces (``retrain demo``'s data: six stable months of
2,500 loan applications, 150 trees per model) and runs the demo's two pipeline runs in each:
the bootstrap, then, after the drifted month is appended, the monthly run that detects the
drift, retrains, evaluates and promotes. One workspace goes through
``retrain.pipeline.run_pipeline`` (the library steps called directly), the other through the
``retraining-pipeline`` flow against a local Prefect API (Prefect's ephemeral server in a
temporary PREFECT_HOME, started and warmed up before anything is timed), with Prefect's
default settings otherwise. ``--with-subflow-heartbeats`` adds a third variant: the flow with
heartbeats in every subflow (Prefect's default), to show what ``retrain_prefect.common.step_settings``
saves.

Wall time is what the issue's target (Prefect / direct <= 1.15) is about. On a busy machine it
swings by seconds from one run to the next (LightGBM's OpenMP threads suffer most), so the
bench also times the library steps inside each variant: wall - steps is what orchestration
added, whatever the steps cost that time. The order of the variants alternates by round.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="retrain-bench-"))
os.environ["PREFECT_HOME"] = str(TMP / "prefect-home")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "retrain")  # as the worker's flows log
os.environ.pop("PREFECT_API_URL", None)
for key in [k for k in os.environ if k.startswith("RETRAIN_")]:
    os.environ.pop(key)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain.demo import append_drifted_month, write_workspace  # noqa: E402
from retrain.pipeline import run_pipeline, steps  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

# The library work of a run: its steps, which both variants call through retrain.pipeline.run
# (the direct runner as plain calls, the Prefect runner inside subflows and tasks).
STEP_NAMES = [name for name, value in vars(steps).items() if hasattr(value, "step")]
_step_seconds = 0.0


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _step_seconds
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _step_seconds += time.perf_counter() - started
    return wrapper


class RetryCounter(logging.Handler):
    """Counts the Prefect client's retries and the seconds it waited before them. A SQLite
    server often answers an insert with 503 ("database is locked"); the client then sleeps
    about two seconds, which moves the ratio by about 0.25 per retry: the bench says how many
    there were, so one unlucky round is not taken for orchestration cost."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries, self.waited = 0, 0.0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Another attempt will be made in" in message:
            self.retries += 1
            found = re.search(r"made in ([0-9.]+)s", message)
            self.waited += float(found.group(1)) if found else 0.0

    def take(self) -> tuple[int, float]:
        taken = (self.retries, self.waited)
        self.retries, self.waited = 0, 0.0
        return taken


retries = RetryCounter()


def instrument() -> None:
    import retrain_prefect.flows.pipeline  # imports Prefect, which configures its loggers
    client_log = logging.getLogger("prefect.client")
    client_log.addHandler(retries)
    client_log.setLevel(logging.DEBUG)  # the retry message is a debug record...
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        if handler.level < logging.INFO:  # ...which the console shows no more than before
            handler.setLevel(logging.INFO)
    for name in STEP_NAMES:  # functools.wraps keeps each step's mark
        setattr(steps, name, _timed(getattr(steps, name)))


def run_direct(config: Path, reason: str):
    return run_pipeline(Workspace.open(config), reason=reason)


def run_prefect(config: Path, reason: str):
    from retrain_prefect.flows.pipeline import retraining_pipeline
    return retraining_pipeline(config=str(config), reason=reason)


def demo(run, directory: Path) -> tuple[float, float]:
    """Wall time of the demo's two pipeline runs (not of writing its data), and the part of it
    spent in library steps."""
    global _step_seconds
    config = write_workspace(directory)
    _step_seconds = 0.0
    started = time.perf_counter()
    first = run(config, "manual")
    elapsed = time.perf_counter() - started
    append_drifted_month(directory)
    started = time.perf_counter()
    second = run(config, "schedule")
    elapsed += time.perf_counter() - started
    assert {m.decision for m in first.models.values()} == {"bootstrapped"}, first.models
    assert second.triggers.drift.detected, "the drifted month was not detected"
    return elapsed, _step_seconds


@contextlib.contextmanager
def subflow_heartbeats():
    """Prefect's default: every subflow sends (and joins) its own heartbeats."""
    import retrain_prefect.flows.drift_check
    import retrain_prefect.flows.pipeline
    original = retrain_prefect.flows.pipeline.step_settings
    retrain_prefect.flows.pipeline.step_settings = retrain_prefect.flows.drift_check.step_settings = contextlib.nullcontext
    try:
        yield
    finally:
        retrain_prefect.flows.pipeline.step_settings = retrain_prefect.flows.drift_check.step_settings = original


def warm_up() -> float:
    """Start the local API and import everything once, outside the timings."""
    started = time.perf_counter()
    demo(run_prefect, TMP / "warm-prefect")
    demo(run_direct, TMP / "warm-direct")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--with-subflow-heartbeats", action="store_true")
    args = parser.parse_args()
    instrument()

    variants = {"direct": lambda d: demo(run_direct, d), "prefect": lambda d: demo(run_prefect, d)}
    if args.with_subflow_heartbeats:
        def prefect_subflow_heartbeats(directory: Path) -> tuple[float, float]:
            with subflow_heartbeats():
                return demo(run_prefect, directory)
        variants["prefect+subflow heartbeats"] = prefect_subflow_heartbeats

    print(f"warm-up (local Prefect API, imports, one demo of each): {warm_up():.1f}s", flush=True)
    wall: dict[str, list[float]] = {name: [] for name in variants}
    orchestration: dict[str, list[float]] = {name: [] for name in variants}
    waits: dict[str, list[tuple[int, float]]] = {name: [] for name in variants}
    retries.take()
    for i in range(args.rounds):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            seconds, in_steps = variants[name](TMP / f"round{i}-{name.replace(' ', '-').replace('+', '-')}")
            wall[name].append(seconds)
            orchestration[name].append(seconds - in_steps)
            waits[name].append(retries.take())
        print(f"round {i + 1}: " + ", ".join(
            f"{n} {wall[n][-1]:.2f}s (steps {wall[n][-1] - orchestration[n][-1]:.2f}s"
            + (f", {waits[n][-1][0]} API retries waiting {waits[n][-1][1]:.1f}s" if waits[n][-1][0] else "")
            + ")" for n in variants), flush=True)

    direct = statistics.median(wall["direct"])
    print(f"\nthe demo pipeline (bootstrap run + drift run), median of {args.rounds} rounds")
    print(f"  {'variant':<28}{'wall':>8}{'ratio':>8}{'orchestration':>15}{'steps x':>9}"
          f"{'retries':>9}{'waited':>8}")
    for name in variants:
        median = statistics.median(wall[name])
        overhead = statistics.median(orchestration[name])
        steps_only = median - overhead
        count = sum(n for n, _ in waits[name])
        waited = sum(w for _, w in waits[name])
        print(f"  {name:<28}{median:7.2f}s{median / direct:8.3f}{overhead:14.2f}s"
              f"{median / steps_only:9.3f}{count:9d}{waited:7.1f}s")
    print("  ratio: wall / direct wall (target <= 1.15); orchestration: wall - library steps;\n"
          "  steps x: wall / library steps of the same runs (noise in the steps cancels);\n"
          "  retries, waited: the Prefect client's retries over all rounds (mostly 503 'database is\n"
          "  locked' from the SQLite server) and the seconds it slept before them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
