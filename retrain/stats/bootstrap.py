"""Performance drift: is the production model's drop on newly labeled rows more than noise?

The point estimate is the relative drop of the primary metric from its value at promotion (on
the version's holdout) to its value on the newly labeled rows. A bootstrap gives an interval
for that drop: the new rows are resampled (within each class, so every resample has both
classes and ROC AUC is defined), and so is the holdout when its predictions are stored in the
version's reference profile (otherwise the value at promotion is taken as exact). The drop is
"not noise" when the lower end of the interval is above zero.

Metrics on a resample are computed from per-row counts (how often the resample drew each row)
with the same definitions as :mod:`retrain.stats.metrics`, many resamples at once.
"""

from __future__ import annotations

import numpy as np

from retrain.stats.metrics import (LOWER_IS_BETTER, METRICS_BY_TASK, binary_auc_weighted,
                                   multiclass_weighted, regression_weighted)

_CLIP = 1e-15  # retrain.stats.metrics.metric_value clips probabilities the same way
_CELLS_PER_CHUNK = 4_000_000  # resamples x rows held in memory at once


def relative_drop(metric: str, baseline, current):
    """How much worse ``current`` is than ``baseline``, relative to it (arrays broadcast)."""
    baseline = np.asarray(baseline, dtype=np.float64)
    diff = (current - baseline) if metric in LOWER_IS_BETTER else (baseline - current)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / np.abs(baseline)


def weighted_metric(metric: str, y: np.ndarray, proba: np.ndarray, weights: np.ndarray,
                    threshold: float = 0.5) -> np.ndarray:
    """``metric`` for each row of ``weights`` (resamples x rows: how often each row is drawn).

    Equal to ``retrain.stats.metrics.metric_value`` on the data with each row repeated that often.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if metric in METRICS_BY_TASK["regression"]:
        return regression_weighted(metric, np.asarray(y, dtype=np.float64),
                                   np.asarray(proba, dtype=np.float64), w)
    y = np.asarray(y, dtype=np.int64)
    if np.ndim(proba) == 2:
        return multiclass_weighted(metric, y, np.asarray(proba, dtype=np.float64), w)
    p = np.clip(np.asarray(proba, dtype=np.float64), _CLIP, 1 - _CLIP)
    total = w.sum(axis=1)
    if metric == "roc_auc":
        return binary_auc_weighted(y, p, w)
    if metric == "brier":
        return (w * (p - y) ** 2).sum(axis=1) / total
    if metric == "log_loss":
        loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        return (w * loss).sum(axis=1) / total
    pred = (p >= threshold).astype(np.int64)
    if metric == "accuracy":
        return (w * (pred == y)).sum(axis=1) / total
    tp = (w * (pred & y)).sum(axis=1)
    fp = (w * (pred & (1 - y))).sum(axis=1)
    fn = (w * ((1 - pred) & y)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "precision":
            out = tp / (tp + fp)
        elif metric == "recall":
            out = tp / (tp + fn)
        elif metric == "f1":
            out = 2 * tp / (2 * tp + fp + fn)
        else:
            raise ValueError(f"unknown metric {metric!r}")
    return np.nan_to_num(out, nan=0.0)  # zero_division=0, as scikit-learn is called


def _stratified_counts(rng: np.random.Generator, strata: np.ndarray, resamples: int) -> np.ndarray:
    """Resample counts (resamples x rows), drawing each stratum's rows among themselves."""
    counts = np.zeros((resamples, strata.shape[0]), dtype=np.float64)
    for value in np.unique(strata):
        idx = np.flatnonzero(strata == value)
        draws = rng.integers(0, idx.size, size=(resamples, idx.size))
        draws += np.arange(resamples)[:, None] * idx.size
        counts[:, idx] = np.bincount(draws.ravel(), minlength=resamples * idx.size
                                     ).reshape(resamples, idx.size)
    return counts


def bootstrap_metric(metric: str, y: np.ndarray, proba: np.ndarray, resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """The metric on ``resamples`` bootstrap resamples of (y, proba), stratified by class for
    a classification (every resample keeps every class)."""
    regression = metric in METRICS_BY_TASK["regression"]
    y = np.asarray(y, dtype=np.float64 if regression else np.int64)
    strata = np.zeros(y.shape[0], dtype=np.int64) if regression else y
    chunk = max(1, min(resamples, _CELLS_PER_CHUNK // max(1, y.shape[0])))
    out = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        out.append(weighted_metric(metric, y, proba, _stratified_counts(rng, strata, size)))
    return np.concatenate(out)


def drop_interval(metric: str, baseline: float, y: np.ndarray | None, proba: np.ndarray | None, *,
                  holdout_y: np.ndarray | None = None, holdout_proba: np.ndarray | None = None,
                  resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                  current: np.ndarray | None = None) -> tuple[float, float]:
    """A percentile bootstrap interval for the relative drop from ``baseline`` to the metric
    on (y, proba), or to ``current`` (``resamples`` values of the metric already drawn); the
    holdout is resampled too when given."""
    rng = np.random.default_rng(seed)
    if current is None:
        current = bootstrap_metric(metric, y, proba, resamples, rng)
    if holdout_y is not None and holdout_proba is not None and len(holdout_y):
        base = bootstrap_metric(metric, holdout_y, holdout_proba, resamples, rng)
    else:
        base = np.full(resamples, baseline, dtype=np.float64)
    drops = relative_drop(metric, base, current)
    drops = drops[np.isfinite(drops)]
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(drops, [tail, 1 - tail])
    return float(lo), float(hi)
