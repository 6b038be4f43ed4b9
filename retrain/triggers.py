"""Retraining triggers: data volume, drift (Evidently KS/PSI) and performance degradation.

Each check compares the data with one model's production version: its training window is the
reference, the rows newer than it are the current data.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from retrain.data import Schema, validate_frame
from retrain.drift import DriftResult, detect_drift
from retrain.metrics import LOWER_IS_BETTER, compute_metrics
from retrain.modeling import encode_target
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


@dataclass
class VolumeCheck:
    model: str
    met: bool
    new_rows: int
    threshold: int
    since: str | None  # end of the production training window

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftCheck:
    model: str
    detected: bool
    drifted_features: list[str] = field(default_factory=list)
    share: float = 0.0
    result: DriftResult | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {"model": self.model, "detected": self.detected,
               "drifted_features": self.drifted_features, "share": self.share, "note": self.note}
        if self.result is not None:
            out["features"] = self.result.table()
            out["reference_rows"] = self.result.reference_rows
            out["current_rows"] = self.result.current_rows
            out["thresholds"] = self.result.thresholds
        return out


@dataclass
class PerformanceCheck:
    model: str
    triggered: bool
    metric: str
    at_promotion: float | None = None
    current: float | None = None
    relative_drop: float | None = None
    rows: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_volume(ws: Workspace, model_name: str) -> VolumeCheck:
    """Labeled rows newer than the production training window vs ``volume_threshold``."""
    threshold = ws.settings.triggers.volume_threshold
    production = ws.registry.production_version(model_name)
    since = production.train_end if production else None
    new_rows = ws.store.count_rows(ws.store.rows(after=since))
    check = VolumeCheck(model_name, new_rows >= threshold, new_rows, threshold,
                        since.isoformat() if since else None)
    log.info("volume %s: %d new labeled rows (threshold %d) -> %s", model_name, new_rows,
             threshold, "met" if check.met else "not met")
    return check


def check_drift(ws: Workspace, model_name: str,
                cache: dict[tuple, DriftResult] | None = None) -> DriftCheck:
    """Evidently KS/PSI between the production training window and the rows after it.

    Models whose production versions share a training window and features share one result
    through ``cache``.
    """
    production = ws.registry.production_version(model_name)
    if production is None:
        return DriftCheck(model_name, False, note="no production version yet")
    schema = Schema.from_dict(production.feature_schema)
    ws.store.schema(expected=schema)  # missing or retyped feature -> DataValidationError
    key = (production.train_start, production.train_end, schema.features, schema.categorical)
    if cache is not None and key in cache:
        result = cache[key]
        return DriftCheck(model_name, result.detected, result.drifted_features, result.share, result)
    reference = ws.store.rows(production.train_start, production.train_end, labeled=False) \
        .select(schema.features).collect()
    current = ws.store.rows(after=production.train_end, labeled=False).select(schema.features).collect()
    if current.height == 0:
        return DriftCheck(model_name, False, note="no rows newer than the production training window")
    validate_frame(current, schema, target=None, what="drift current")
    result = detect_drift(reference, current, schema, ws.settings.drift)
    if cache is not None:
        cache[key] = result
    log.info("drift %s: %d/%d features drifted (share %.2f, threshold %.2f) -> %s", model_name,
             len(result.drifted_features), len(result.features), result.share,
             ws.settings.drift.drift_share, "DETECTED" if result.detected else "none")
    return DriftCheck(model_name, result.detected, result.drifted_features, result.share, result)


def check_performance(ws: Workspace, model_name: str) -> PerformanceCheck:
    """The production model's primary metric on new labeled rows vs its metric at promotion."""
    metric = ws.settings.promotion.metric
    production = ws.registry.production_version(model_name)
    if production is None:
        return PerformanceCheck(model_name, False, metric, note="no production version yet")
    new = ws.store.rows(after=production.train_end).collect()
    if new.height == 0:
        return PerformanceCheck(model_name, False, metric, note="no new labeled rows")
    model = ws.registry.load(production)
    target = ws.settings.data.target
    validate_frame(new, model.preprocessing.schema, target=target, what="performance")
    y, _ = encode_target(new.get_column(target), model.classes)
    if len(set(y.tolist())) < 2:
        return PerformanceCheck(model_name, False, metric, rows=new.height,
                                note="new labeled rows have one class")
    current = compute_metrics(y, model.predict_proba(new))[metric]
    baseline = production.metrics[metric]
    drop = ((current - baseline) if metric in LOWER_IS_BETTER else (baseline - current)) / abs(baseline)
    triggered = drop >= ws.settings.triggers.performance_max_relative_drop
    log.info("performance %s: %s %.4f at promotion, %.4f on %d new rows (drop %.1f%%) -> %s",
             model_name, metric, baseline, current, new.height, 100 * drop,
             "DEGRADED" if triggered else "ok")
    return PerformanceCheck(model_name, triggered, metric, baseline, current, drop, new.height)


# The seed names should_retrain's flags like the checks; keep the checks reachable.
_drift_check, _volume_check, _performance_check = check_drift, check_volume, check_performance


class RetrainingTriggers:
    """Decide whether to retrain (the seed's API): ``should_retrain(...) -> (bool, info)``."""

    def __init__(self, config=None, workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.open(config)

    def should_retrain(self, check_drift: bool = True, check_volume: bool = True,
                       check_performance: bool = False, models: list[str] | None = None
                       ) -> tuple[bool, dict[str, Any]]:
        ws = self.workspace
        per_model: dict[str, dict[str, Any]] = {}
        reasons: list[str] = []
        for name in ws.model_names(models):
            entry: dict[str, Any] = {"reasons": []}
            if ws.registry.production_version(name) is None:
                entry["reasons"].append("bootstrap")
            if check_drift:
                drift = _drift_check(ws, name)
                entry["drift"] = drift.as_dict()
                if drift.detected:
                    entry["reasons"].append("drift")
            if check_volume:
                volume = _volume_check(ws, name)
                entry["volume"] = volume.as_dict()
                if volume.met:
                    entry["reasons"].append("volume")
            if check_performance:
                perf = _performance_check(ws, name)
                entry["performance"] = perf.as_dict()
                if perf.triggered:
                    entry["reasons"].append("performance")
            entry["retrain"] = bool(entry["reasons"])
            per_model[name] = entry
            reasons.extend(r for r in entry["reasons"] if r not in reasons)
        info = {"trigger_reason": ", ".join(reasons) if reasons else None,
                "models": per_model,
                "models_to_retrain": [n for n, e in per_model.items() if e["retrain"]]}
        return bool(reasons), info
