"""Twelve models retrained in one pipeline run: one after the other, and on a local Dask
cluster of 1, 2 and 4 worker processes, all in this one invocation.

    .venv/bin/python bench/parallel.py [--kind random_forest|lightgbm] [--models 12]
                                       [--rows 20000] [--trees 100] [--workers 1,2,4]

Each variant builds the same demo workspace (six months of ``--rows`` loan applications a
month, so the 60-day training window holds about 2 x ``--rows`` rows, a fifth of them held
out) with ``--models`` models of ``--kind`` of different seeds and sizes, and times one
``run_pipeline`` (the direct runner, no Prefect) that bootstraps them all: the data's check,
fitting, registration, evaluation and promotion. The Dask variants start their cluster inside
the timed run (``[orchestration] task_runner = "dask"``, one thread per worker), as a run does.

Threads: a forest fitted on its own takes every core (n_jobs = the cores the process may use);
fitted k at once on one machine, each takes cores // k (at least one), so 2 workers on 2 cores
fit one thread each and 4 workers on 2 cores are oversubscribed two to one. LightGBM takes one
thread below 50,000 training rows (two above) whatever the pool, so a sequential run of it
uses one core. The load average before, during and after says how busy the machine was.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for key in [k for k in os.environ if k.startswith("RETRAIN_")]:
    os.environ.pop(key)

from retrain.demo import write_workspace  # noqa: E402
from retrain.estimators import available_cores  # noqa: E402
from retrain.pipeline import run_pipeline, steps  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

_step_seconds: dict[str, float] = {}


def models(kind: str, count: int, trees: int) -> str:
    """``count`` models of ``kind`` with their own seeds and sizes."""
    params = {"random_forest": "min_samples_leaf = {leaf}", "lightgbm": "num_leaves = {leaves}"}
    return "\n".join(
        f'[models.{kind}_{i:02d}]\nkind = "{kind}"\nseed = {i}\n'
        f"params = {{ n_estimators = {trees}, "
        + params[kind].format(leaf=5 + i % 4, leaves=15 + i % 4 * 8) + " }\n"
        for i in range(count))


def workspace(directory: Path, args, orchestration: str) -> Path:
    config = write_workspace(directory, months=6, rows_per_month=args.rows)
    text = config.read_text()
    text = (text[:text.index("[models.random_forest]")] + models(args.kind, args.models, args.trees)
            + "\n" + text[text.index("[triggers]"):])
    config.write_text(text + (f"\n[orchestration]\n{orchestration}\n" if orchestration else ""))
    return config


def timed_step():
    original = steps.retrain_models

    def retrain_models(context, *inputs):
        started = time.perf_counter()
        candidates = original(context, *inputs)
        _step_seconds["retrain-models"] = time.perf_counter() - started
        _step_seconds["fits"] = sum(c.fitted_by.seconds for c in candidates.values())
        return candidates

    retrain_models.step = original.step
    steps.retrain_models = retrain_models


def run(config: Path) -> tuple[float, float, float]:
    ws = Workspace.open(config)
    started = time.perf_counter()
    document = run_pipeline(ws, reason="manual")
    wall = time.perf_counter() - started
    ws.registry.dispose()
    decisions = {m.decision for m in document.models.values()}
    assert decisions == {"bootstrapped"}, document.models
    return wall, _step_seconds.pop("retrain-models"), _step_seconds.pop("fits")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["random_forest", "lightgbm"], default="random_forest")
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per month")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each variant, in alternating order; the median is shown")
    args = parser.parse_args()
    # Quiet: the run's notices go to the log channel, which says it has nobody to tell.
    logging.getLogger("retrain").setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    timed_step()
    variants = {"sequential": ""}
    for n in (int(w) for w in args.workers.split(",")):
        variants[f"dask, {n} worker{'s' if n > 1 else ''}"] = (
            f'task_runner = "dask"\ndask_workers = {n}\ndask_threads_per_worker = 1')
    print(f"{args.models} {args.kind} models x {args.trees} trees, ~{2 * args.rows} rows in the "
          f"training window; {available_cores()} cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="retrain-bench-parallel-") as tmp:
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                config = workspace(Path(tmp) / f"round{r}-variant{list(variants).index(name)}",
                                   args, variants[name])
                rounds[name].append(run(config))
                wall, fitting, fits = rounds[name][-1]
                print(f"  {name:<18} run {wall:6.2f} s, retrain-models {fitting:6.2f} s, "
                      f"fits {fits:6.2f} s  "
                      f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    results = {name: tuple(statistics.median(x[i] for x in runs) for i in range(3))
               for name, runs in rounds.items()}
    base_wall, base_fit, _ = results["sequential"]
    print(f"\nmedian of {args.rounds} round(s)")
    print(f"  {'variant':<18}{'run':>9}{'ratio':>8}{'retrain-models':>16}{'ratio':>8}"
          f"{'fits':>9}")
    for name, (wall, fitting, fits) in results.items():
        print(f"  {name:<18}{wall:8.2f}s{wall / base_wall:8.3f}{fitting:15.2f}s"
              f"{fitting / base_fit:8.3f}{fits:8.2f}s")
    print("  ratio: to the sequential run (below 1 is faster); retrain-models includes the\n"
          "  Dask cluster's start and the registrations, made one by one in the run's process;\n"
          "  fits: the seconds of every fit added up, as each measured itself where it ran")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
