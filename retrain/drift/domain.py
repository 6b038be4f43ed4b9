"""The domain classifier: can a model tell the current rows from the reference rows?

Per-feature tests compare marginal distributions, so they miss a change in how features go
together (two features whose correlation flips while each stays N(0, 1)). A LightGBM
classifier trained to tell reference rows (label 0) from current rows (label 1) sees the
joint distribution: if the two windows are alike its cross-validated ROC AUC is about 0.5;
it alarms when the lower bound of the AUC's interval exceeds ``threshold`` (``[drift]
thresholds = {domain_classifier = 0.55}``), and names the features it relied on (their share
of the gain of its trees).

Each side is sampled to at most ``rows`` rows (seeded). A reference given as a stored profile
contributes its joint row sample (``report_sample``, ``[drift] report_rows`` rows). The AUC is
that of the out-of-fold scores of ``folds``-fold stratified cross-validation; its interval is
DeLong's for one AUC on those scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from retrain.data import Schema
from retrain.data.stream import SAMPLE_SEED

DOMAIN_ROWS = 10_000  # rows per side
DOMAIN_THRESHOLD = 0.55
DOMAIN_FOLDS = 5
DOMAIN_CONFIDENCE = 0.95
TOP_FEATURES = 5
_PARAMS = {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 15,
           "min_child_samples": 50, "verbose": -1, "n_jobs": 1}


@dataclass
class DomainDrift:
    """The domain classifier's verdict on the whole dataset."""

    auc: float
    lower: float
    upper: float
    threshold: float
    detected: bool  # lower > threshold
    confidence: float
    folds: int
    reference_rows: int
    current_rows: int
    # The features it relied on most: (feature, share of its total gain), largest first.
    top_features: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def auc_interval(y: np.ndarray, scores: np.ndarray, confidence: float = DOMAIN_CONFIDENCE
                 ) -> tuple[float, float, float]:
    """ROC AUC of ``scores`` for the 0/1 labels ``y`` and DeLong's interval for it."""
    y = np.asarray(y).astype(bool)
    pos, neg = scores[y], scores[~y]
    m, n = pos.shape[0], neg.shape[0]
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    auc = float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (ranks[:m] - stats.rankdata(pos)) / n  # each positive's share of negatives below it
    v01 = 1.0 - (ranks[m:] - stats.rankdata(neg)) / m
    se = float(np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return auc, auc - half, auc + half


def _matrix(reference: pl.DataFrame, current: pl.DataFrame, schema: Schema) -> np.ndarray:
    """Both sides as one float matrix; a categorical column as codes of the values of both."""
    both = pl.concat([reference.select(schema.features), current.select(schema.features)],
                     how="vertical_relaxed")
    columns = []
    for col in schema.features:
        series = both.get_column(col)
        if col in schema.categorical:
            values = series.cast(pl.String)
            keys = values.drop_nulls().unique().sort()
            codes = values.replace_strict(keys, pl.Series(np.arange(keys.len(), dtype=np.float64)),
                                          default=None, return_dtype=pl.Float64)
            columns.append(codes.to_numpy())
        else:
            columns.append(series.cast(pl.Float64).to_numpy())
    return np.column_stack(columns).astype(np.float64, copy=False)


def domain_classifier(reference: pl.DataFrame, current: pl.DataFrame, schema: Schema, *,
                      threshold: float = DOMAIN_THRESHOLD, rows: int = DOMAIN_ROWS,
                      folds: int = DOMAIN_FOLDS, confidence: float = DOMAIN_CONFIDENCE,
                      seed: int = SAMPLE_SEED) -> DomainDrift | None:
    """Whether a classifier tells ``current`` from ``reference`` (their ``schema`` feature
    columns) better than chance by more than ``threshold``; None when a side has fewer rows
    than folds."""
    # Late: LightGBM loads only when the domain classifier is asked for.
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedKFold

    if reference.height > rows:
        reference = reference.sample(n=rows, seed=seed)
    if current.height > rows:
        current = current.sample(n=rows, seed=seed)
    if min(reference.height, current.height) < max(folds, 2):
        return None
    X = _matrix(reference, current, schema)
    y = np.concatenate([np.zeros(reference.height, dtype=np.int64),
                        np.ones(current.height, dtype=np.int64)])
    categorical = [i for i, col in enumerate(schema.features) if col in schema.categorical]
    scores = np.empty(y.shape[0], dtype=np.float64)
    gain = np.zeros(len(schema.features), dtype=np.float64)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(split.split(X, y)):
        model = LGBMClassifier(**_PARAMS, random_state=seed + k, importance_type="gain")
        model.fit(X[train], y[train], categorical_feature=categorical or "auto")
        scores[test] = model.predict_proba(X[test])[:, 1]
        gain += model.booster_.feature_importance(importance_type="gain")
    auc, lower, upper = auc_interval(y, scores, confidence)
    total = gain.sum()
    order = np.argsort(-gain, kind="stable")[:TOP_FEATURES]
    top = [{"feature": schema.features[i], "importance": float(gain[i] / total)}
           for i in order if total > 0 and gain[i] > 0]
    return DomainDrift(auc=auc, lower=lower, upper=upper, threshold=threshold,
                       detected=bool(lower > threshold), confidence=confidence, folds=folds,
                       reference_rows=reference.height, current_rows=current.height,
                       top_features=top)


__all__ = ["DomainDrift", "auc_interval", "domain_classifier", "DOMAIN_THRESHOLD", "DOMAIN_ROWS"]
