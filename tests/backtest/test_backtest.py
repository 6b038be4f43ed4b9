"""Backtesting a retraining policy: the replay runs the library's real rules against scratch
registries, period by period, and never touches the workspace's own registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from retrain.backtest.replay import backtest
from retrain.config import load_config
from retrain.demo import append_drifted_month, generate_month, write_workspace
from retrain.errors import ConfigError
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace

pytestmark = pytest.mark.slow

CEILING_TOML = """
[data]
source = "data"
target = "y"
timestamp = "ts"

[models.gbm]
kind = "lightgbm"
params = { n_estimators = 300, learning_rate = 0.05, num_leaves = 15, min_child_samples = 10 }

[triggers]
volume_threshold = 200

[training]
window = "all"
holdout_fraction = 0.3

[drift]
save_reports = false
"""


def near_the_ceiling(directory: Path, months: int = 8, rows: int = 2500, seed: int = 0) -> Path:
    """A stationary relation a model learns to a ROC AUC above 0.95 from one month, and
    better from more months."""
    (directory / "data").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for m in range(months):
        X = rng.normal(size=(rows, 8))
        logit = 16.0 * (X[:, 0] + X[:, 1] * X[:, 2] + np.sin(2 * X[:, 3]) + 0.7 * X[:, 4] ** 2
                        - 0.7 + 0.5 * X[:, 5] * X[:, 6])
        y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        start = datetime(2026, 1, 1) + timedelta(days=30 * m)
        ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 30 * 86400, rows))]
        pl.DataFrame({f"x{i}": X[:, i] for i in range(8)}).with_columns(
            pl.Series("ts", ts), pl.Series("y", y)).write_parquet(directory / "data" / f"m{m:02d}.parquet")
    (directory / "retrain.toml").write_text(CEILING_TOML)
    return directory / "retrain.toml"


def demo(directory: Path, task: str = "binary", drifted: int = 2) -> Path:
    """Six stable months of the demo, then ``drifted`` months after its abrupt change."""
    config = write_workspace(directory, months=6, rows_per_month=1500, trees=40, task=task)
    for i in range(drifted):
        generate_month(6 + i, 2500, drifted=True, seed=7, task=task).write_parquet(
            directory / "data" / f"applications_{7 + i:02d}.parquet")
    return config


def test_after_an_abrupt_change_the_configured_policy_recovers_and_never_does_not(tmp_path):
    result = backtest(load_config(demo(tmp_path / "ws")), policies=["configured", "never"],
                      models=["lightgbm"])
    configured = result.policies["configured"].periods["lightgbm"]
    never = result.policies["never"].periods["lightgbm"]
    assert [p.served_version for p in never] == ["lightgbm-v1"] * len(never)
    # The last period end is after the change; the configured policy has retrained on it.
    assert configured[-1].served_version != "lightgbm-v1"
    assert configured[-1].value > never[-1].value + 0.08, (configured[-1], never[-1])
    assert any(p.drift for p in configured[-2:]), "the change is seen as drift"
    assert result.policies["configured"].totals["lightgbm"].mean_metric > \
        result.policies["never"].totals["lightgbm"].mean_metric


def test_on_stationary_data_the_configured_policy_barely_acts(tmp_path):
    result = backtest(load_config(demo(tmp_path / "ws", drifted=0)), policies=["configured"],
                      models=["lightgbm"])
    periods = result.policies["configured"].periods["lightgbm"]
    assert periods[0].decision == "bootstrapped"
    assert sum(p.decision == "promoted" for p in periods[1:]) <= 1, periods
    assert sum(p.drift for p in periods) <= 1, periods


def test_near_the_ceiling_the_error_basis_promotes_and_the_literal_rule_never_does(tmp_path):
    settings = load_config(near_the_ceiling(tmp_path / "ws"))
    error = backtest(settings, policies=["configured"])
    literal = backtest(settings, policies=["configured"],
                       overrides={"promotion.improvement_basis": "metric"})
    first = error.policies["configured"].periods["gbm"][0]
    assert first.value > 0.95, "production must start near the ceiling"
    promoted = [p for p in error.policies["configured"].periods["gbm"][1:4]
                if p.decision == "promoted"]
    assert promoted, "the default rule promotes a better candidate within a few periods"
    assert all(p.decision != "promoted" for p in literal.policies["configured"].periods["gbm"])
    assert error.policies["configured"].mean_metric > literal.policies["configured"].mean_metric


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_the_command_writes_json_and_a_page_and_leaves_the_registry_as_it_was(tmp_path, task):
    config = demo(tmp_path / "ws", task=task, drifted=1)
    ws = Workspace.open(config)
    run_pipeline(ws)  # the workspace has a real registry, artifacts and an outbox
    ws.registry.dispose()
    before = _tree_digest(tmp_path / "ws" / ".retrain")
    page = tmp_path / "backtest.html"
    run = subprocess.run([sys.executable, "-m", "retrain.cli", "backtest", "--config", str(config),
                          "--json", "--html", str(page), "--every", "45d"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert set(document["policies"]) == {"configured", "never", "always", "oracle"}
    assert len(document["periods"]) >= 3
    for policy in document["policies"].values():
        assert {"mean_metric", "retrains", "promotions", "periods"} <= set(policy)
        assert len(policy["periods"]["lightgbm"]) == len(document["periods"])
    metric = {"binary": "roc_auc", "regression": "rmse", "multiclass": "roc_auc_ovr"}[task]
    assert document["metrics"] == {"random_forest": metric, "lightgbm": metric}
    html = page.read_text()
    assert html.startswith("<html>") and "plotly" in html and "Totals" in html
    assert _tree_digest(tmp_path / "ws" / ".retrain") == before  # byte for byte


@pytest.mark.parametrize("argv, needle", [
    (["--every", "month"], "--every: expected a period such as 30d"),
    (["--policy", "sometimes"], "unknown policy 'sometimes'"),
    (["--set", "promotion.improvement_basis=neither"], "--set"),
    (["--set", "nosuchsection.key=1"], "no [nosuchsection] section"),
    (["--from", "2027-01-01"], "nothing to replay"),
])
def test_bad_backtest_options_are_one_line_errors(tmp_path, argv, needle):
    config = write_workspace(tmp_path / "ws", months=3, rows_per_month=300, trees=10)
    run = subprocess.run([sys.executable, "-m", "retrain.cli", "backtest", "--config", str(config),
                          *argv], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and needle in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_a_bad_override_names_the_key():
    from retrain.backtest.replay import parse_overrides
    with pytest.raises(ConfigError, match="expected SECTION.KEY=VALUE"):
        parse_overrides(["improvement_basis"])
    assert parse_overrides(["training.window=all", "promotion.min_relative_improvement=0.1"]) == {
        "training.window": "all", "promotion.min_relative_improvement": 0.1}
