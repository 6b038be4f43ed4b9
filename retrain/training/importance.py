"""Model-agnostic feature importance: how much a version's default metric drops on its holdout
when one feature's column is shuffled.

Computed when a candidate is fitted (``retrain.training.fit``) and stored in its reference
profile (``ReferenceProfile.meta["importance"]``), so a drift check can weigh each drifted
feature by how much the production model relies on it (``[drift] min_importance``).

The metric is the task's default (ROC AUC, one-vs-rest ROC AUC, RMSE), whatever
``[promotion] metric`` says, so importances are comparable across versions; its drop is
``baseline - permuted`` (``permuted - baseline`` for an error such as RMSE), the mean over
``repeats`` shuffles, on at most ``rows`` holdout rows drawn with a fixed seed. A shuffle
that happens to help gives a small negative value; shares treat it as 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from retrain.modeling import TrainedModel
from retrain.stats.metrics import DEFAULT_METRIC, LOWER_IS_BETTER, metric_value

IMPORTANCE_ROWS = 2000  # holdout rows the shuffles are scored on
IMPORTANCE_REPEATS = 3
IMPORTANCE_SEED = 20240611


def permutation_importance(model: TrainedModel, holdout: pl.DataFrame, labels: np.ndarray, *,
                           rows: int = IMPORTANCE_ROWS, repeats: int = IMPORTANCE_REPEATS,
                           seed: int = IMPORTANCE_SEED) -> dict[str, Any] | None:
    """``{"metric", "baseline", "rows", "repeats", "values": {feature: drop}}`` for ``model``
    on ``holdout`` (its feature columns) and its encoded ``labels``; None when the holdout
    cannot give the metric (fewer than two rows, a single class)."""
    labels = np.asarray(labels)
    metric = DEFAULT_METRIC[model.task]
    if holdout.height < 2 or (model.task != "regression" and len(np.unique(labels)) < 2):
        return None
    rng = np.random.default_rng(seed)
    if holdout.height > rows:
        keep = np.sort(rng.choice(holdout.height, size=rows, replace=False))
        holdout, labels = holdout[keep], labels[keep]
    X = model.preprocessing.transform(holdout)
    baseline = metric_value(metric, labels, model.scores_of_matrix(X))
    if not np.isfinite(baseline):
        return None
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    values: dict[str, float] = {}
    shuffled = X.copy()
    for j, feature in enumerate(model.preprocessing.schema.features):
        drops = []
        for _ in range(repeats):
            shuffled[:, j] = X[rng.permutation(X.shape[0]), j]
            drops.append(sign * (baseline - metric_value(metric, labels,
                                                          model.scores_of_matrix(shuffled))))
        shuffled[:, j] = X[:, j]
        values[feature] = float(np.mean(drops))
    return {"metric": metric, "baseline": float(baseline), "rows": int(X.shape[0]),
            "repeats": repeats, "values": values}


__all__ = ["permutation_importance", "IMPORTANCE_ROWS", "IMPORTANCE_REPEATS"]
