"""Binary-classification metrics and the relative improvement used for promotion."""

from __future__ import annotations

import math

import numpy as np

from retrain.errors import DataValidationError

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier")
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


def metric_value(metric: str, y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> float:
    """One metric for 0/1 labels and positive-class probabilities (labels need both classes)."""
    # Late: scikit-learn takes seconds to import; naming and comparing metrics needs none of it.
    from sklearn import metrics as skm
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1 - 1e-15)
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y_true, proba))
    if metric == "log_loss":
        return float(skm.log_loss(y_true, proba, labels=[0, 1]))
    if metric == "brier":
        return float(np.mean((proba - y_true) ** 2))
    pred = (proba >= threshold).astype(int)
    if metric == "accuracy":
        return float(np.mean(pred == y_true))
    scorer = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
    return float(scorer(y_true, pred, zero_division=0))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All metrics for 0/1 labels and positive-class probabilities."""
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        raise DataValidationError(None, "the holdout has only one class; ROC AUC is undefined "
                                  "(use a larger holdout_fraction or window)")
    return {m: metric_value(m, y_true, proba, threshold) for m in METRICS}


def relative_improvement(metric: str, candidate: float, production: float) -> float:
    """How much better the candidate is, relative to production.

    For a higher-is-better metric, ``(candidate - production) / production``; for a
    lower-is-better one (log_loss, brier), the relative reduction
    ``(production - candidate) / production``.
    """
    if production == 0:
        return 0.0 if candidate == production else math.copysign(math.inf, (
            production - candidate) if metric in LOWER_IS_BETTER else (candidate - production))
    if metric in LOWER_IS_BETTER:
        return (production - candidate) / abs(production)
    return (candidate - production) / abs(production)
