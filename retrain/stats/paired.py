"""Is a challenger really better than the champion on the same rows, or only by noise?

Both models are scored on the same holdout, so their errors are correlated; the intervals
here are *paired*: DeLong's for the difference of two ROC AUCs, and a paired bootstrap for any
metric. Differences are oriented so that a positive value means the challenger is better
(for lower-is-better metrics, ``champion - challenger``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from retrain.stats.metrics import LOWER_IS_BETTER, METRICS_BY_TASK, metric_value


@dataclass(frozen=True)
class Interval:
    metric: str
    method: str  # delong | bootstrap
    confidence: float
    difference: float  # challenger better by this much (positive = better)
    lower: float
    upper: float

    @property
    def excludes_zero_from_below(self) -> bool:
        return self.lower > 0

    def as_dict(self) -> dict:
        return asdict(self)


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank (1-based)."""
    return stats.rankdata(x, method="average")


def delong_interval(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                    confidence: float = 0.95) -> Interval:
    """DeLong's interval for AUC(challenger) - AUC(champion) on the same rows.

    Fast form of Sun & Xu (2014): structural components from midranks, O(n log n).
    """
    y = np.asarray(y).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError("DeLong's interval needs at least two rows of each class")
    aucs, v10, v01 = [], [], []
    for scores in (challenger, champion):
        scores = np.asarray(scores, dtype=np.float64)
        tx, ty = _midranks(scores[pos]), _midranks(scores[neg])
        tz = _midranks(np.concatenate([scores[pos], scores[neg]]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)
        v01.append(1.0 - (tz[m:] - ty) / m)
    s10 = np.cov(np.vstack(v10))
    s01 = np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = float(aucs[0] - aucs[1])
    half = float(stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(max(var, 0.0)))
    return Interval("roc_auc", "delong", confidence, diff, diff - half, diff + half)


def bootstrap_interval(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, metric: str,
                       confidence: float = 0.95, samples: int = 1000, seed: int = 0) -> Interval:
    """Percentile interval of the paired difference from ``samples`` resamples of the rows."""
    regression = metric in METRICS_BY_TASK["regression"]
    y = np.asarray(y, dtype=np.float64) if regression else np.asarray(y).astype(int)
    champion = np.asarray(champion, dtype=np.float64)
    challenger = np.asarray(challenger, dtype=np.float64)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    binary = not regression and champion.ndim == 1

    def diff(idx: np.ndarray) -> float | None:
        yy = y[idx]
        if binary and yy.min() == yy.max():
            return None  # a resample with one class has no AUC; skip it
        value = sign * (metric_value(metric, yy, challenger[idx])
                        - metric_value(metric, yy, champion[idx]))
        return value if np.isfinite(value) else None  # e.g. a class missing from a resample

    rng = np.random.default_rng(seed)
    n = len(y)
    values = [d for _ in range(samples) if (d := diff(rng.integers(0, n, n))) is not None]
    point = diff(np.arange(n))
    if not values or point is None:  # no resample gives the metric: nothing is significant
        return Interval(metric, "bootstrap", confidence, float("nan") if point is None else point,
                        -math.inf, math.inf)
    alpha = 1 - confidence
    lower, upper = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return Interval(metric, "bootstrap", confidence, float(point), float(lower), float(upper))


def improvement_interval(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, metric: str,
                         *, method: str = "auto", confidence: float = 0.95, samples: int = 1000,
                         seed: int = 0) -> Interval:
    """DeLong for ROC AUC (``auto``), a paired bootstrap otherwise or when asked."""
    if method == "delong" or (method == "auto" and metric == "roc_auc"):
        if metric != "roc_auc":
            raise ValueError(f"DeLong's interval is for roc_auc, not {metric}")
        return delong_interval(y, champion, challenger, confidence)
    return bootstrap_interval(y, champion, challenger, metric, confidence, samples, seed)
