"""Orchestration overhead: the demo pipeline under Prefect vs the same library calls made directly.

    .venv/bin/python bench/pipeline.py [--rounds 3] [--with-subflow-heartbeats]

Each round builds identical demo workspaces (``retrain demo``'s data: six stable months of
2,500 loan applications, 150 trees per model) and runs the demo's two pipeline runs in each:
the bootstrap, then, after the drifted month is appended, the monthly run that detects the
drift, retrains, evaluates and promotes. One workspace goes through
``retrain.pipeline.run_pipeline`` (the library steps called directly), the other through the
``retraining-pipeline`` flow against a local Prefect API (Prefect's ephemeral server in a
temporary PREFECT_HOME, started and warmed up before anything is timed), with Prefect's
default settings otherwise. The order alternates between rounds, since the machine may be
busy. ``--with-subflow-heartbeats`` adds a third variant: the flow with heartbeats in every
subflow (Prefect's default), to show what ``flows.common.step_settings`` saves.

Prints each round's wall times, the median of each variant and the ratio Prefect / direct
(target: at most 1.15).
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
from retrain.pipeline import run_pipeline  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402


def run_direct(config: Path, reason: str) -> dict:
    return run_pipeline(Workspace.open(config), reason=reason)


def run_prefect(config: Path, reason: str) -> dict:
    from flows.pipeline import retraining_pipeline
    return retraining_pipeline(config=str(config), reason=reason)


def demo(run, directory: Path) -> float:
    """Wall time of the demo's two pipeline runs (not of writing its data)."""
    config = write_workspace(directory)
    started = time.perf_counter()
    first = run(config, "manual")
    elapsed = time.perf_counter() - started
    append_drifted_month(directory)
    started = time.perf_counter()
    second = run(config, "schedule")
    elapsed += time.perf_counter() - started
    _check(first, second)
    return elapsed


def _check(first: dict, second: dict) -> None:
    assert {m["decision"] for m in first["models"].values()} == {"bootstrapped"}, first["models"]
    assert second["triggers"]["drift"]["detected"], "the drifted month was not detected"


@contextlib.contextmanager
def subflow_heartbeats():
    """Prefect's default: every subflow sends (and joins) its own heartbeats."""
    import flows.common
    import flows.drift_check
    import flows.pipeline
    original = flows.common.step_settings
    flows.pipeline.step_settings = flows.drift_check.step_settings = contextlib.nullcontext
    try:
        yield
    finally:
        flows.pipeline.step_settings = flows.drift_check.step_settings = original


def warm_up() -> float:
    """Start the local API and import everything once, outside the timings."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm() -> int:
        return 1

    started = time.perf_counter()
    warm()
    demo(run_prefect, TMP / "warm-prefect")
    demo(run_direct, TMP / "warm-direct")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--with-subflow-heartbeats", action="store_true")
    args = parser.parse_args()

    variants = {"direct": lambda d: demo(run_direct, d), "prefect": lambda d: demo(run_prefect, d)}
    if args.with_subflow_heartbeats:
        def prefect_subflow_heartbeats(directory: Path) -> float:
            with subflow_heartbeats():
                return demo(run_prefect, directory)
        variants["prefect, subflow heartbeats"] = prefect_subflow_heartbeats

    print(f"warm-up (local Prefect API, imports, one run of each): {warm_up():.1f}s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.rounds):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(variants[name](TMP / f"round{i}-{name.replace(' ', '-').replace(',', '')}"))
        print(f"round {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in variants), flush=True)

    direct = statistics.median(times["direct"])
    print(f"\nthe demo pipeline (bootstrap + drift run), median of {args.rounds} rounds:")
    print(f"  direct library calls     {direct:7.2f}s")
    for name in variants:
        if name != "direct":
            median = statistics.median(times[name])
            print(f"  {name:<24} {median:7.2f}s   ratio {median / direct:.3f}   "
                  f"(overhead {median - direct:+.2f}s)")
    print("  target: ratio <= 1.15")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
