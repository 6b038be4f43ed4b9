"""The multiclass and regression metrics are scikit-learn's numbers, and the relative
improvement is oriented by whether lower is better."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from retrain.stats.metrics import (DEFAULT_METRIC, LOWER_IS_BETTER, METRICS_BY_TASK,
                                   compute_metrics, metric_value)
from retrain.config import DEFAULT_METRIC_OF_TASK, METRICS_OF_TASK, Metric
from typing import get_args


def multiclass(n=400, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_multiclass_metrics_are_scikit_learns():
    y, proba = multiclass()
    labels = list(range(proba.shape[1]))
    pred = proba.argmax(axis=1)
    assert metric_value("accuracy", y, proba) == pytest.approx(skm.accuracy_score(y, pred))
    assert metric_value("macro_f1", y, proba) == pytest.approx(
        skm.f1_score(y, pred, average="macro", zero_division=0))
    assert metric_value("log_loss", y, proba) == pytest.approx(skm.log_loss(y, proba, labels=labels))
    assert metric_value("roc_auc_ovr", y, proba) == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_a_class_the_model_never_saw_counts_as_missed():
    y, proba = multiclass(n=200, k=3)
    unseen = y.copy()
    unseen[:20] = -1  # labels of a class the model's classes do not include
    seen = metric_value("accuracy", y, proba)
    assert metric_value("accuracy", unseen, proba) == pytest.approx(
        (np.sum(proba.argmax(axis=1)[20:] == y[20:])) / 200)
    assert metric_value("accuracy", unseen, proba) < seen
    assert metric_value("log_loss", unseen, proba) > metric_value("log_loss", y, proba)


def test_regression_metrics_are_scikit_learns():
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 500)
    predicted = y + rng.normal(0, 4, 500)
    assert metric_value("rmse", y, predicted) == pytest.approx(
        np.sqrt(skm.mean_squared_error(y, predicted)))
    assert metric_value("mae", y, predicted) == pytest.approx(skm.mean_absolute_error(y, predicted))
    assert metric_value("r2", y, predicted) == pytest.approx(skm.r2_score(y, predicted))
    assert metric_value("mape", y, predicted) == pytest.approx(
        skm.mean_absolute_percentage_error(y, predicted))
    assert set(compute_metrics(y, predicted, task="regression")) == {"rmse", "mae", "r2", "mape"}


def test_the_configuration_knows_every_tasks_metrics():
    assert METRICS_OF_TASK == METRICS_BY_TASK and DEFAULT_METRIC_OF_TASK == DEFAULT_METRIC
    assert set(get_args(Metric)) == {m for names in METRICS_BY_TASK.values() for m in names}
    assert {"rmse", "mae", "mape", "log_loss", "brier"} == LOWER_IS_BETTER


def test_a_holdout_without_one_of_the_classes_still_has_its_metrics():
    """A rare class may have no row in the newest holdout: ROC AUC is averaged over the classes
    the labels have and macro F1 over those labeled or predicted, as scikit-learn does; a
    paired interval no resample can give is never significant."""
    from retrain.stats.paired import improvement_interval
    y, proba = multiclass(n=300, k=3)
    keep = y != 2
    y, proba = y[keep], proba[keep]
    pred = proba.argmax(axis=1)
    expected_auc = np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in (0, 1)])
    assert metric_value("roc_auc_ovr", y, proba) == pytest.approx(expected_auc)
    assert metric_value("macro_f1", y, proba) == pytest.approx(
        skm.f1_score(y, pred, average="macro", zero_division=0))
    metrics = compute_metrics(y, proba, task="multiclass")
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    interval = improvement_interval(y, proba, proba[:, ::-1], "roc_auc_ovr", samples=200)
    assert np.isfinite(interval.lower) and interval.lower < 0
    nothing = improvement_interval(np.zeros(5, dtype=int), proba[:5], proba[:5], "roc_auc_ovr",
                                   samples=50)
    assert nothing.lower == -np.inf  # no resample has two classes: not significant
