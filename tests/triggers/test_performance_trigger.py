"""The performance-degradation trigger: a relative drop of the primary metric that the
bootstrap says is real, not one that a small sample produces by chance."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.demo import generate_month
from retrain.stats.bootstrap import drop_interval, relative_drop, weighted_metric
from retrain.stats.metrics import METRICS_BY_TASK, metric_value
from retrain.pipeline import run_pipeline
from retrain.triggers import check_performance

MODEL = "lightgbm"


def scored(rng: np.random.Generator, n: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities whose ROC AUC grows with ``signal``."""
    y = rng.integers(0, 2, n)
    proba = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=n))))
    return y, np.round(proba, 2)  # rounded: ties, as real scores have


def scored_for(task: str, rng: np.random.Generator, n: int):
    """Labels and scores of ``task``: probabilities of three classes (ties included), or
    predicted values of a regression target."""
    if task == "binary":
        return scored(rng, n, 0.8)
    if task == "multiclass":
        y = rng.integers(0, 3, n)
        logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
        proba = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 2)
        return y, proba
    y = rng.normal(10, 3, n)
    return y, np.round(y + rng.normal(0, 1, n), 1)


@pytest.mark.parametrize("task, metric", [(t, m) for t, names in METRICS_BY_TASK.items()
                                          for m in names])
def test_metrics_on_a_resample_equal_the_metric_on_repeated_rows(task, metric):
    rng = np.random.default_rng(0)
    y, proba = scored_for(task, rng, 300)
    counts = rng.multinomial(300, np.full(300, 1 / 300), size=3)
    ours = weighted_metric(metric, y, proba, counts)
    for row, value in zip(counts, ours):
        expected = metric_value(metric, np.repeat(y, row), np.repeat(proba, row, axis=0))
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_chance_drops_on_few_rows_rarely_trigger():
    """Same model quality, 40 new rows per check: the point estimate alone drops by 5% or more
    in many checks; with the bootstrap interval the trigger fires in few of them."""
    rng = np.random.default_rng(1)
    holdout_y, holdout_p = scored(rng, 1000, 0.8)
    baseline = metric_value("roc_auc", holdout_y, holdout_p)
    checks, naive, triggered = 150, 0, 0
    for _ in range(checks):
        y, proba = scored(rng, 40, 0.8)
        drop = relative_drop("roc_auc", baseline, metric_value("roc_auc", y, proba))
        if drop >= 0.05:
            naive += 1
            lo, _ = drop_interval("roc_auc", baseline, y, proba, holdout_y=holdout_y,
                                  holdout_proba=holdout_p, resamples=300)
            triggered += lo > 0
    assert naive / checks > 0.1 and triggered / checks <= 0.03, (naive, triggered)


def test_a_real_drop_is_significant():
    rng = np.random.default_rng(2)
    holdout_y, holdout_p = scored(rng, 2000, 0.8)
    y, proba = scored(rng, 800, 0.3)
    baseline = metric_value("roc_auc", holdout_y, holdout_p)
    drop = relative_drop("roc_auc", baseline, metric_value("roc_auc", y, proba))
    lo, hi = drop_interval("roc_auc", baseline, y, proba, holdout_y=holdout_y,
                           holdout_proba=holdout_p, resamples=500)
    assert 0 < lo <= drop <= hi
    # Lower-is-better metrics drop when they rise.
    assert relative_drop("log_loss", 0.5, 0.6) == pytest.approx(0.2)


def test_degraded_production_model_triggers(workspace, drift_month):
    workspace.settings.drift.save_reports = False
    run_pipeline(workspace, models=[MODEL])
    drift_month(workspace, rows=500)
    check = check_performance(workspace, MODEL)
    assert check.rows == 500 and check.current < check.at_promotion
    assert check.triggered and check.significant
    lo, hi = check.drop_interval
    assert 0 < lo <= check.relative_drop <= hi
    assert check.as_dict()["confidence"] == 0.95 and check.as_dict()["threshold"] == 0.05


def test_a_few_stable_rows_do_not_trigger(workspace):
    workspace.settings.drift.save_reports = False
    run_pipeline(workspace, models=[MODEL])
    data = workspace.settings.base_dir / "data"
    months = len(list(data.glob("*.parquet")))
    generate_month(months, 80, drifted=False, seed=11).write_parquet(data / "stable_extra.parquet")
    check = check_performance(workspace, MODEL)
    assert check.rows == 80 and not check.triggered
    # 80 rows of the same distribution: the interval of the drop includes no drop at all, so
    # whatever the point estimate, nothing is significant.
    lo, hi = check.drop_interval
    assert lo <= 0 <= hi and lo <= check.relative_drop <= hi
    assert check.significant is False


def test_drop_threshold_is_configurable(workspace, drift_month):
    workspace.settings.drift.save_reports = False
    run_pipeline(workspace, models=[MODEL])
    drift_month(workspace, rows=500)
    workspace.settings.triggers.performance_max_relative_drop = 0.9
    check = check_performance(workspace, MODEL)
    # A real, significant drop that is smaller than the 90% now required does not retrain.
    assert check.significant and check.drop_interval[0] > 0
    assert 0.05 <= check.relative_drop < 0.9 and not check.triggered
    assert check.as_dict()["threshold"] == 0.9
