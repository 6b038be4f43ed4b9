"""A version's performance on rows without labels: CBPE (``retrain.stats.cbpe``) with the
calibration stored in its reference profile when it was trained (older versions: fitted now
from the holdout scores and labels the profile holds)."""

from __future__ import annotations

import numpy as np
import polars as pl

from retrain.data import validate_frame
from retrain.drift.profile import ReferenceProfile
from retrain.errors import DataValidationError, RetrainError
from retrain.records import Record
from retrain.registry import ModelVersion
from retrain.stats.cbpe import ESTIMATED_METRICS, Calibration, estimate_performance, fit_calibration
from retrain.workspace import Workspace


class MetricEstimate(Record):
    estimate: float
    interval: list[float]  # [lo, hi]: where the realised metric falls at ``confidence``


class PerformanceEstimate(Record):
    """``retrain estimate``'s answer: a version's estimated metrics on ``rows`` unlabeled rows."""

    model: str
    version_id: str
    rows: int
    metrics: dict[str, MetricEstimate]
    confidence: float = 0.95

    def as_json(self) -> dict:
        """``{"model", "version_id", "rows", "metrics": {name: {"estimate", "interval"}}}``."""
        return {"model": self.model, "version_id": self.version_id, "rows": self.rows,
                "metrics": {m: e.to_dict() for m, e in self.metrics.items()}}


def calibration_of(ws: Workspace, version: ModelVersion) -> Calibration:
    """The version's calibration; ``RetrainError`` naming why there is none (a regression,
    no stored profile, a holdout of one class)."""
    if version.task not in ESTIMATED_METRICS:
        raise RetrainError(f"{version.version_id} is a {version.task} model: performance "
                           "estimation without labels is for classifiers")
    data = ws.registry.load_profile_bytes(version)
    if data is None:
        raise RetrainError(f"{version.version_id} was stored without a reference profile, so "
                           "there is no holdout to calibrate on; retrain it")
    profile = ReferenceProfile.from_bytes(data)
    if profile.calibration is not None:
        return profile.calibration
    labels = profile.holdout_labels
    if profile.holdout_proba is None or labels is None or len(np.unique(labels[labels >= 0])) < 2:
        raise RetrainError(f"{version.version_id} has no holdout with both outcomes to "
                           "calibrate on")
    return fit_calibration(profile.holdout_proba, labels, version.task)


def estimate_version(ws: Workspace, version: ModelVersion, frame: pl.DataFrame,
                     confidence: float = 0.95) -> PerformanceEstimate:
    """The version's estimated metrics on ``frame`` (its feature columns; a target column,
    if any, is ignored)."""
    if frame.height == 0:
        raise DataValidationError(None, "no rows to estimate on")
    ws = ws.for_model(version.model_name)
    model = ws.registry.load(version)
    validate_frame(frame, model.preprocessing.schema, target=None, what="estimate")
    estimates = estimate_scores(model.predict_scores(frame), calibration_of(ws, version),
                                confidence)
    return PerformanceEstimate(model=version.model_name, version_id=version.version_id,
                               rows=frame.height, metrics=estimates, confidence=confidence)


def estimate_scores(scores: np.ndarray, calibration: Calibration,
                    confidence: float = 0.95) -> dict[str, MetricEstimate]:
    return {m: MetricEstimate(estimate=e.estimate, interval=list(e.interval))
            for m, e in estimate_performance(scores, calibration, confidence=confidence).items()}
