"""Start-up time of the command line: ``retrain --help`` and ``retrain models`` against
``python -c pass`` in the same run.

    .venv/bin/python bench/startup.py [--repeat 7]

Builds a small demo workspace with one registered model in a temporary folder, then runs each
command ``--repeat`` times as a fresh process (the console script in this environment) and
prints the median wall time and its ratio to the bare interpreter's. ``retrain models`` opens
the registry (SQLAlchemy, the schema check) and the feature store's settings; neither command
imports scikit-learn, SciPy, LightGBM, Evidently or Prefect (tests/cli/test_startup.py checks
that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain.demo import write_workspace  # noqa: E402
from retrain.pipeline import run_pipeline  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402


def median_seconds(argv: list[str], repeat: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("retrain"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_")}
    with tempfile.TemporaryDirectory() as tmp:
        config = write_workspace(Path(tmp) / "ws", months=2, rows_per_month=600, trees=10)
        ws = Workspace.open(config)
        ws.settings.drift.save_reports = False
        run_pipeline(ws, ["lightgbm"])
        runs = {"python -c pass": [sys.executable, "-c", "pass"],
                "retrain --help": [exe, "--help"],
                "retrain models": [exe, "--config", str(config), "models"]}
        results = {name: median_seconds(argv, args.repeat, env) for name, argv in runs.items()}
    baseline = results["python -c pass"]
    print(f"start-up, median of {args.repeat} fresh processes")
    print(f"{'command':<18} {'seconds':>8} {'x python -c pass':>17}")
    for name, seconds in results.items():
        print(f"{name:<18} {seconds:>8.3f} {seconds / baseline:>17.1f}")


if __name__ == "__main__":
    main()
