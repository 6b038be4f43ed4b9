"""The metrics of each task and the relative improvement used for promotion.

What a model outputs (its *scores*) depends on the task: the positive class's probability for
a binary target (one value per row), one probability per class for a multiclass target (a row
per row, classes in the model's order), the predicted value for a regression target. Labels
are 0/1 for binary, class codes 0..k-1 for multiclass (-1 for a class the model never saw,
which every metric counts as missed), floats for regression.

Multiclass and regression metrics are computed here with numpy (tests check them against
scikit-learn's) so that the weighted forms of ``retrain.stats.bootstrap`` give the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from retrain.errors import DataValidationError

TASKS = ("binary", "multiclass", "regression")
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "multiclass": ("accuracy", "macro_f1", "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
# The primary metric when [promotion] metric is not set: threshold-free and bounded for the
# classifications (ROC AUC; one-vs-rest, macro-averaged, for several classes), the error in
# the target's own unit for a regression.
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "rmse"}
METRICS = tuple(dict.fromkeys(m for names in METRICS_BY_TASK.values() for m in names))
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae", "mape"})
# Higher-is-better metrics whose best value is 1: their error is the shortfall 1 - value.
BOUNDED_BY_ONE = frozenset({"roc_auc", "accuracy", "precision", "recall", "f1", "r2",
                            "macro_f1", "roc_auc_ovr"})
IMPROVEMENT_BASES = ("error", "metric")
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] before a logarithm
MAPE_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's floor for |y| in MAPE


def metric_value(metric: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """One metric of labels and scores (see the module's docstring for their shapes)."""
    scores = np.asarray(scores, dtype=np.float64)
    if metric in METRICS_BY_TASK["regression"]:
        return _regression(metric, np.asarray(y_true, dtype=np.float64), scores)
    if scores.ndim == 2:
        return _multiclass(metric, np.asarray(y_true, dtype=np.int64), scores)
    return _binary(metric, np.asarray(y_true), scores, threshold)


def _binary(metric: str, y_true: np.ndarray, proba: np.ndarray, threshold: float) -> float:
    # Late: scikit-learn takes seconds to import; naming and comparing metrics needs none of it.
    from sklearn import metrics as skm
    proba = np.clip(proba, EPS, 1 - EPS)
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y_true, proba))
    if metric == "log_loss":
        return float(skm.log_loss(y_true, proba, labels=[0, 1]))
    if metric == "brier":
        return float(np.mean((proba - y_true) ** 2))
    pred = (proba >= threshold).astype(int)
    if metric == "accuracy":
        return float(np.mean(pred == y_true))
    scorers = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
    if metric not in scorers:
        raise ValueError(f"{metric} is not a metric of a binary target")
    return float(scorers[metric](y_true, pred, zero_division=0))


def _multiclass(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    weights = np.ones((1, y.shape[0]))
    return float(multiclass_weighted(metric, y, proba, weights)[0])


def multiclass_weighted(metric: str, y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``metric`` for each row of ``w`` (resamples x rows: how often each row is drawn)."""
    n, k = proba.shape
    total = w.sum(axis=1)
    known = y >= 0
    if metric == "log_loss":
        p_true = np.where(known, proba[np.arange(n), np.where(known, y, 0)], 0.0)
        loss = -np.log(np.clip(p_true, EPS, 1 - EPS))
        return (w * loss).sum(axis=1) / total
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return (w * (pred == y)).sum(axis=1) / total
    if metric == "macro_f1":  # over the classes labeled or predicted, as scikit-learn does
        scores = []
        for c in range(k):
            tp = (w * ((pred == c) & (y == c))).sum(axis=1)
            fp = (w * ((pred == c) & (y != c))).sum(axis=1)
            fn = (w * ((pred != c) & (y == c))).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                scores.append(np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan))
        return _mean_over_classes(scores)
    if metric == "roc_auc_ovr":  # over the classes the labels have (one-vs-rest, macro)
        return _mean_over_classes([binary_auc_weighted((y == c).astype(np.int64), proba[:, c], w)
                                   for c in range(k)])
    raise ValueError(f"{metric} is not a metric of a multiclass target")


def _mean_over_classes(values: list[np.ndarray]) -> np.ndarray:
    """The mean over the classes that have a value (NaN: the class is not there)."""
    stacked = np.vstack(values)
    present = np.isfinite(stacked)
    with np.errstate(invalid="ignore"):
        return np.where(present.any(axis=0),
                        np.where(present, stacked, 0.0).sum(axis=0) / present.sum(axis=0), np.nan)


def binary_auc_weighted(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of 0/1 ``y`` and scores ``p`` per row of weights ``w`` (ties count a half);
    NaN where a row of weights leaves one class out."""
    order = np.argsort(p, kind="stable")
    ps, ys, ws = p[order], y[order], w[:, order]
    starts = np.flatnonzero(np.concatenate(([True], ps[1:] != ps[:-1])))
    pos = np.add.reduceat(ws * ys, starts, axis=1)  # weight of positives per tied score
    neg = np.add.reduceat(ws * (1 - ys), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each score
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)


def _regression(metric: str, y: np.ndarray, predicted: np.ndarray) -> float:
    return float(regression_weighted(metric, y, predicted, np.ones((1, y.shape[0])))[0])


def regression_weighted(metric: str, y: np.ndarray, predicted: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``metric`` for each row of ``w`` (resamples x rows), as scikit-learn defines it."""
    total = w.sum(axis=1)
    err = predicted - y
    if metric == "rmse":
        return np.sqrt((w * err ** 2).sum(axis=1) / total)
    if metric == "mae":
        return (w * np.abs(err)).sum(axis=1) / total
    if metric == "mape":
        return (w * (np.abs(err) / np.maximum(np.abs(y), MAPE_EPS))).sum(axis=1) / total
    if metric == "r2":
        mean = (w * y).sum(axis=1) / total
        sse = (w * err ** 2).sum(axis=1)
        sst = (w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # scikit-learn: a constant target gives 1.0 for a perfect fit, else 0.0
            return np.where(sst > 0, 1 - sse / sst, np.where(sse == 0, 1.0, 0.0))
    raise ValueError(f"{metric} is not a metric of a regression target")


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5,
                    task: str = "binary") -> dict[str, float]:
    """Every metric of ``task`` for labels and scores."""
    if task == "regression":
        return {m: metric_value(m, y_true, scores) for m in METRICS_BY_TASK["regression"]}
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true[y_true >= 0])) < 2:
        raise DataValidationError(None, "the holdout has only one class; ROC AUC is undefined "
                                  "(use a larger holdout_fraction or window)")
    return {m: metric_value(m, y_true, scores, threshold) for m in METRICS_BY_TASK[task]}


def relative_improvement(metric: str, candidate: float, production: float,
                         basis: str = "metric") -> float:
    """How much better the candidate is, relative to production.

    ``basis="metric"``: for a higher-is-better metric, ``(candidate - production) /
    production``. ``basis="error"``: for a metric bounded by 1 (``BOUNDED_BY_ONE``), the
    relative reduction of its shortfall from perfect, ``((1 - production) - (1 - candidate))
    / (1 - production)``, which stays reachable near the ceiling (+5% of 0.953 is above 1; 5%
    of its 0.047 shortfall is 0.0024). For a lower-is-better metric (log_loss, brier, rmse,
    mae, mape) either basis is the relative reduction ``(production - candidate) /
    production``.
    """
    if basis == "error" and metric in BOUNDED_BY_ONE:
        shortfall = 1.0 - production
        if shortfall <= 0:  # production is perfect: nothing can be better
            return 0.0 if candidate >= production else -math.inf
        return (candidate - production) / shortfall
    if production == 0:
        return 0.0 if candidate == production else math.copysign(math.inf, (
            production - candidate) if metric in LOWER_IS_BETTER else (candidate - production))
    if metric in LOWER_IS_BETTER:
        return (production - candidate) / abs(production)
    return (candidate - production) / abs(production)
