"""Per-feature drift with Evidently: KS (numeric) and PSI (numeric and categorical).

Reference = the rows the production version was trained on (a bounded sample for large
windows); current = rows newer than its training window. A feature drifts according to
``[drift] feature_rule``; the dataset drifts when the share of drifted features reaches
``drift_share``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field

import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.errors import DataValidationError

log = logging.getLogger(__name__)


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    psi: float
    ks_pvalue: float | None
    drifted: bool


@dataclass
class DriftResult:
    detected: bool
    share: float
    drifted_features: list[str]
    features: list[FeatureDrift]
    reference_rows: int
    current_rows: int
    thresholds: dict[str, float | str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self) -> list[dict]:
        return [{"feature": f.feature, "kind": f.kind, "psi": round(f.psi, 4),
                 "ks_pvalue": None if f.ks_pvalue is None else float(f"{f.ks_pvalue:.4g}"),
                 "drifted": f.drifted} for f in self.features]


def _sample(df: pl.DataFrame, max_rows: int, seed: int = 0) -> pl.DataFrame:
    return df if df.height <= max_rows else df.sample(n=max_rows, seed=seed)


def _feature_drifted(rule: str, psi_drift: bool, ks_drift: bool | None) -> bool:
    if ks_drift is None:  # categorical: PSI only
        return psi_drift
    return {"any": psi_drift or ks_drift, "both": psi_drift and ks_drift,
            "ks": ks_drift, "psi": psi_drift}[rule]


def detect_drift(reference: pl.DataFrame, current: pl.DataFrame, schema: Schema,
                 config: DriftConfig) -> DriftResult:
    """Run Evidently's KS and PSI per feature and decide per feature and for the dataset."""
    if reference.height == 0:
        raise DataValidationError(None, "the drift reference window is empty")
    if current.height == 0:
        raise DataValidationError(None, "no rows newer than the production training window")
    # Evidently's own statistical tests, as its Report calls them (without rendering plots).
    from evidently.legacy.calculations.stattests import ks_stat_test, psi_stat_test
    from evidently.legacy.core import ColumnType

    reference = _sample(reference.select(schema.features), config.max_rows)
    current = _sample(current.select(schema.features), config.max_rows)
    values: dict[tuple[str, str], float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for col in schema.features:
            categorical = col in schema.categorical
            cast = pl.String if categorical else pl.Float64
            ref = reference.get_column(col).cast(cast).to_pandas().dropna()
            cur = current.get_column(col).cast(cast).to_pandas().dropna()
            if ref.empty or cur.empty:
                raise DataValidationError(col, "all values are null in the drift "
                                          f"{'reference' if ref.empty else 'current'} window")
            kind = ColumnType.Categorical if categorical else ColumnType.Numerical
            values[(col, "psi")] = float(psi_stat_test(ref, cur, kind, config.psi_threshold).drift_score)
            if not categorical:
                values[(col, "ks")] = float(
                    ks_stat_test(ref, cur, kind, config.ks_pvalue_threshold).drift_score)
    features = []
    for col in schema.features:
        psi = values[(col, "psi")]
        ks = values.get((col, "ks"))
        psi_drift = psi >= config.psi_threshold
        ks_drift = None if ks is None else ks < config.ks_pvalue_threshold
        features.append(FeatureDrift(col, "categorical" if col in schema.categorical else "numeric",
                                     psi, ks, _feature_drifted(config.feature_rule, psi_drift, ks_drift)))
    drifted = [f.feature for f in features if f.drifted]
    share = len(drifted) / len(features)
    return DriftResult(
        detected=share >= config.drift_share, share=share, drifted_features=drifted,
        features=features, reference_rows=reference.height, current_rows=current.height,
        thresholds={"ks_pvalue": config.ks_pvalue_threshold, "psi": config.psi_threshold,
                    "drift_share": config.drift_share, "feature_rule": config.feature_rule})
