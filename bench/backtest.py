"""Time of a backtest per period and policy, against one direct pipeline run of the same
workspace in the same process (the baseline: what one period of one policy must cost at least).

    .venv/bin/python bench/backtest.py [--months 7] [--every 30d]

Builds the demo workspace (six stable months, one drifted month, 150 trees) in a temporary
folder, times one ``run_pipeline`` bootstrap on it, then the backtest of all four policies, and
prints seconds per period and policy and their ratio to the bootstrap run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain.backtest.replay import POLICIES, backtest  # noqa: E402
from retrain.config import load_config  # noqa: E402
from retrain.demo import append_drifted_month, write_workspace  # noqa: E402
from retrain.pipeline import run_pipeline  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--every", default="30d")
    args = parser.parse_args()
    logging.getLogger("retrain").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        config = write_workspace(base / "ws", months=args.months)
        append_drifted_month(base / "ws", index=args.months)
        scratch = write_workspace(base / "baseline", months=args.months)
        append_drifted_month(base / "baseline", index=args.months)
        started = time.perf_counter()
        ws = Workspace.open(scratch)
        run_pipeline(ws)
        baseline = time.perf_counter() - started
        ws.registry.dispose()
        started = time.perf_counter()
        result = backtest(load_config(config), every=args.every)
        total = time.perf_counter() - started
    runs = len(result.periods) * (len(POLICIES) - 1) + 1  # never runs once
    per_run = total / runs
    print(f"one direct pipeline run (bootstrap, baseline): {baseline:.2f} s")
    print(f"backtest: {len(result.periods)} periods x {len(POLICIES)} policies, {total:.1f} s "
          f"({runs} pipeline runs, {per_run:.2f} s each, {per_run / baseline:.2f}x the baseline)")
    for name, policy in result.policies.items():
        print(f"  {name:<10} {policy.seconds:7.1f} s  ({policy.seconds / len(result.periods):.2f} s "
              f"per period)")


if __name__ == "__main__":
    main()
