"""Routing decisions per second: ``ABTestingManager.route`` against bare baselines.

    .venv/bin/python bench/routing.py [--keys 1000000] [--repeat 3]

Builds a small demo workspace in a temporary folder (one production version and a candidate),
starts a 50/50 A/B test, warms the routing cache, then times over the same keys (best of
``--repeat``):

1. ``route(model, key)`` with the A/B test active (the prediction service's hot path);
2. ``route_prediction(model, key)`` (the seed's API);
3. ``route`` for a model without an experiment (everything to production);

and two baselines measured in the same run: a bare keyed ``hashlib.blake2b`` loop (the hash
alone, no decision) and ``random.random() < 0.5`` per key (not sticky). It prints decisions per
second and each figure's ratio to the baselines. The target is at least 200k decisions/s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from hashlib import blake2b
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain.demo import write_workspace  # noqa: E402
from retrain.experiments import ABTestingManager  # noqa: E402
from retrain.pipeline import run_pipeline  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

MODEL = "lightgbm"


def best_rate(fn, keys: list[str], repeat: int) -> float:
    """Decisions per second of ``fn`` over ``keys``, the best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(keys)
        best = min(best, time.perf_counter() - start)
    return len(keys) / best


def bare_blake2b(keys: list[str]) -> None:
    salt = b"0123456789abcdef"
    for key in keys:
        blake2b(key.encode(), digest_size=8, key=salt).digest()


def random_split(keys: list[str]) -> None:
    rand = random.random
    for _ in keys:
        "B" if rand() < 0.5 else "A"  # noqa: B018 - the decision is the work being timed


def workspace(folder: Path) -> Workspace:
    write_workspace(folder, months=3, rows_per_month=600, trees=10)
    ws = Workspace.open(folder / "retrain.toml")
    run_pipeline(ws, [MODEL, "random_forest"])
    source = ws.registry.production_version(MODEL)
    ws.registry.register_version(
        model_name=MODEL, model=ws.registry.load(source), train_start=source.train_start,
        train_end=source.train_end, holdout_start=source.holdout_start,
        row_count=source.row_count, holdout_rows=source.holdout_rows,
        data_fingerprint=source.data_fingerprint, metrics=source.metrics, actor="bench")
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keys = [f"user-{i}-request-{i * 7919 % 1000003}" for i in range(args.keys)]
    with tempfile.TemporaryDirectory() as tmp:
        ws = workspace(Path(tmp) / "ws")
        manager = ABTestingManager(workspace=ws, cache_seconds=3600)
        manager.create_ab_test(MODEL, "production", "2", traffic_split=0.5)
        route, route_prediction = manager.route, manager.route_prediction
        route(MODEL, "warm-up")
        route("random_forest", "warm-up")

        def ab_route(ks):
            for k in ks:
                route(MODEL, k)

        def seed_api(ks):
            for k in ks:
                route_prediction(MODEL, k)

        def production_only(ks):
            for k in ks:
                route("random_forest", k)

        baseline_hash = best_rate(bare_blake2b, keys, args.repeat)
        baseline_random = best_rate(random_split, keys, args.repeat)
        results = [("route, A/B test active", best_rate(ab_route, keys, args.repeat)),
                   ("route_prediction (seed API)", best_rate(seed_api, keys, args.repeat)),
                   ("route, no experiment", best_rate(production_only, keys, args.repeat))]
        share_b = sum(route(MODEL, k).variant == "B" for k in keys) / len(keys)
        ws.registry.dispose()

    print(f"{len(keys):,} keys, best of {args.repeat}; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'':32}{'decisions/s':>14}{'vs blake2b':>12}{'vs random()':>13}")
    print(f"{'baseline: bare keyed blake2b':32}{baseline_hash:>14,.0f}{1.0:>12.2f}"
          f"{baseline_hash / baseline_random:>13.2f}")
    print(f"{'baseline: random() < 0.5':32}{baseline_random:>14,.0f}"
          f"{baseline_random / baseline_hash:>12.2f}{1.0:>13.2f}")
    for name, rate in results:
        print(f"{name:32}{rate:>14,.0f}{rate / baseline_hash:>12.2f}{rate / baseline_random:>13.2f}"
              f"   {'OK' if rate >= 200_000 else 'BELOW'} (target 200,000/s)")
    print(f"observed share routed to B: {share_b:.4f} (configured 0.5000)")


if __name__ == "__main__":
    main()
