"""The drift check of one model: its production version's reference against the newer rows.

Three parts, reported separately:

* feature drift: every feature of the version's schema (``compute_drift``);
* label drift: the target on newly labeled rows vs on the training window's labeled rows;
* prediction drift: the production model's predictions on the new rows vs on its holdout.

The reference side comes from the version's stored profile (computed at training); versions
without one read their training window instead, which gives the same numbers. Which parts
can trigger retraining is ``[drift] trigger_on`` (default: features only).

The current window is read in a stream and, when it has more than ``[drift] max_rows`` rows,
sampled as it is read (:mod:`retrain.drift.window` says what is computed on what), so a
window larger than memory can be checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift.compute import DriftReport, compute_drift, detect_drift
from retrain.drift.profile import ReferenceProfile, sample_rows, window_profile, with_holdout
from retrain.data.stream import count_rows, sample_window
from retrain.drift.segments import SegmentedDrift, segment_drift
from retrain.drift.window import described_rows, feature_sample, label_sample, sampling_key
from retrain.drift.report_files import DriftReportFiles, report_directory, write_reports
from retrain.drift.results import (DomainClassifier, DriftPart, DriftedFeature, FeatureRow, MethodRow,
                                   ModelDrift, ReportFiles, SegmentCheck, SegmentRow)
from retrain.errors import DataValidationError, RetrainError
from retrain.modeling import encode_target
from retrain.tasks import predicted_labels
from retrain.registry import ModelVersion
from retrain.registry.rules import CURRENT
from retrain.workspace import Workspace

log = logging.getLogger("retrain")

PREDICTION = "prediction"


def _rows(report: DriftReport) -> list[MethodRow]:
    return [MethodRow(**row) for row in report.table_rows()]


def _drifted(report: DriftReport) -> list[DriftedFeature]:
    return [DriftedFeature(**row) for row in report.drifted_values()]


def _part(report: DriftReport | None, note: str) -> DriftPart:
    if report is None:
        return DriftPart(detected=False, note=note)
    return DriftPart(detected=report.detected, note=note, table=_rows(report),
                     drifted=_drifted(report), reference_rows=report.reference_rows,
                     current_rows=report.current_rows, decision=report.decision)


@dataclass
class DriftCheck:
    model: str
    detected: bool
    drifted_features: list[str] = field(default_factory=list)
    share: float = 0.0
    result: DriftReport | None = None  # feature drift
    note: str = ""
    label: DriftReport | None = None
    prediction: DriftReport | None = None
    label_note: str = ""
    prediction_note: str = ""
    reference: str = ""  # where the reference came from: "profile" or "window"
    triggered_by: list[str] = field(default_factory=list)  # features | label | prediction
    reports: DriftReportFiles | None = None
    # Rows newer than the training window; the statistics see ``result.current_rows`` of them
    # (all, or a sample of [drift] max_rows).
    current_window_rows: int | None = None
    segments: list[SegmentedDrift] = field(default_factory=list)  # [drift] segments

    def summary(self) -> ModelDrift:
        """The check as a record (the run document's ``triggers.drift.models[name]``)."""
        out = ModelDrift(model=self.model, detected=self.detected,
                         drifted_features=list(self.drifted_features), share=self.share,
                         note=self.note, triggered_by=list(self.triggered_by),
                         report=None if self.reports is None
                         else ReportFiles(**self.reports.as_dict()))
        r = self.result
        if r is not None:
            out = out.model_copy(update=dict(
                features=[FeatureRow(**row) for row in r.feature_rows()], table=_rows(r),
                drifted=_drifted(r), reference_rows=r.reference_rows,
                current_rows=r.current_rows, thresholds=dict(r.thresholds),
                methods=list(r.methods), decision=r.decision, reference=self.reference or None,
                below_importance=list(r.below_importance),
                domain_classifier=None if r.domain is None
                else DomainClassifier(**r.domain.as_dict()),
                segments=[SegmentCheck(**{**seg.as_dict(), "segments": [
                    SegmentRow(**row) for row in seg.as_dict()["segments"]]})
                          for seg in self.segments],
                label_drift=_part(self.label, self.label_note),
                prediction_drift=_part(self.prediction, self.prediction_note)))
        return out

    def as_dict(self) -> dict[str, Any]:
        return self.summary().to_dict()


# The reference --------------------------------------------------------------------------

def load_profile(ws: Workspace, version: ModelVersion) -> ReferenceProfile | None:
    """The version's stored profile if it matches the current ``[drift]`` sampling, else None."""
    try:
        data = ws.registry.load_profile_bytes(version)
        profile = None if data is None else ReferenceProfile.from_bytes(data)
    except RetrainError as exc:
        log.warning("%s: reference profile unusable (%s); reading the reference window",
                    version.version_id, exc)
        return None
    if profile is None or not profile.matches(ws.settings.drift.max_rows):
        return None
    if profile.schema.as_dict() != Schema.from_dict(version.feature_schema).as_dict():
        return None
    return profile


def recompute_profile(ws: Workspace, version: ModelVersion, model=None) -> ReferenceProfile:
    """What the stored profile would hold, from the feature store (for older versions)."""
    ws = ws.for_model(version.model_name)
    schema = Schema.from_dict(version.feature_schema)
    profile = window_profile(ws, version.train_start, version.train_end, schema, version.task)
    if version.holdout_start is None:
        return profile
    holdout = ws.store.rows(version.holdout_start, version.train_end).collect()
    if holdout.height == 0:
        return profile
    model = model or ws.registry.load(version)
    y, _ = encode_target(holdout.get_column(ws.settings.data.target), model.classes, model.task)
    return with_holdout(profile, model.predict_scores(holdout), y, model.task)


def reference_profile(ws: Workspace, version: ModelVersion, use_profile: bool = True
                      ) -> tuple[ReferenceProfile, str]:
    """The version's reference profile and where it came from (``profile`` | ``window``)."""
    profile = load_profile(ws, version) if use_profile else None
    if profile is not None:
        return profile, "profile"
    return recompute_profile(ws, version), "window"


# The parts ------------------------------------------------------------------------------

def _label_drift(ws: Workspace, version: ModelVersion, profile: ReferenceProfile,
                 cfg: DriftConfig) -> tuple[DriftReport | None, str]:
    target = ws.settings.data.target
    if profile.label is None or profile.label.n == 0:
        return None, "no labeled rows in the reference window"
    # Class counts for a classification, the distribution of values for a regression.
    labels = label_sample(ws, ws.store.rows(after=version.train_end), version.task, cfg.max_rows)
    if described_rows(labels) == 0:
        return None, "no newly labeled rows"
    schema = Schema((target,), (target,) if version.task != "regression" else ())
    label_reference = ReferenceProfile(schema, {target: profile.label}, rows=profile.label.n,
                                       window_rows=profile.label.n, max_rows=None)
    current = ReferenceProfile(schema, {target: labels}, rows=described_rows(labels),
                               window_rows=described_rows(labels), max_rows=None)
    return compute_drift(label_reference, current, config=cfg), ""


def _prediction_drift(ws: Workspace, version: ModelVersion, profile: ReferenceProfile,
                      current: pl.DataFrame, cfg: DriftConfig) -> tuple[DriftReport | None, str]:
    if profile.holdout_proba is None or len(profile.holdout_proba) == 0:
        return None, "no holdout predictions for this version"
    model = ws.registry.load(version)
    reference, predictions = profile.holdout_proba, model.predict_scores(current)
    if model.task == "multiclass":  # the predicted classes' distribution
        reference = [str(c) for c in predicted_labels(reference, model.classes, model.task)]
        predictions = [str(c) for c in predicted_labels(predictions, model.classes, model.task)]
        return compute_drift(pl.DataFrame({PREDICTION: reference}),
                             pl.DataFrame({PREDICTION: predictions}), config=cfg,
                             categorical=[PREDICTION]), ""
    return compute_drift(pl.DataFrame({PREDICTION: reference}),
                         pl.DataFrame({PREDICTION: predictions}), config=cfg), ""


# The check ------------------------------------------------------------------------------

def check_drift(ws: Workspace, model_name: str, cache: dict[tuple, Any] | None = None, *,
                use_profile: bool = True, save_reports: bool | None = None,
                production=CURRENT, defer_render: bool = False) -> DriftCheck:
    """Feature, label and prediction drift of ``model_name``'s production version.

    Models whose production versions share a training window and features share the feature
    and label results (and the rendered report) through ``cache``. ``save_reports`` (default
    ``[drift] save_reports``) writes the report files; ``use_profile=False`` ignores stored
    profiles and reads the reference window. ``production``: the model's production version
    as the run read it (default: now). ``defer_render``: Evidently's page is left pending in
    ``check.reports`` (``DriftReportFiles.render``), off the decision's path.
    """
    ws = ws.for_model(model_name)
    cfg = ws.settings.drift
    production = ws.registry.production_of(model_name, production)
    if production is None:
        return DriftCheck(model_name, False, note="no production version yet")
    schema = Schema.from_dict(production.feature_schema)
    ws.store.schema(expected=schema)  # missing or retyped feature -> DataValidationError
    # Read in a stream: a window of more than max_rows rows is sampled as it is read.
    window = feature_sample(ws, ws.store.rows(after=production.train_end, labeled=False),
                            schema, cfg.max_rows, validate_as="drift current")
    if window.window_rows == 0:
        return DriftCheck(model_name, False, note="no rows newer than the production training window")
    current = window.frame

    profile, source = reference_profile(ws, production, use_profile)
    key = (ws.dataset, production.train_start, production.train_end, schema.features,
           schema.categorical, source)
    shared = None if cache is None else cache.get(key)
    if shared is None:
        features = detect_drift(profile, current, schema, cfg)
        label, label_note = _label_drift(ws, production, profile, cfg)
        shared = {"features": features, "label": label, "label_note": label_note, "rendered": None}
        if cache is not None:
            cache[key] = shared
    features = shared["features"]
    prediction, prediction_note = _prediction_drift(ws, production, profile, current, cfg)

    segmented = _segment_checks(ws, production, schema, cfg) if cfg.segments else []
    parts = {"features": features, "label": shared["label"], "prediction": prediction}
    triggered_by = [p for p in cfg.trigger_on if parts[p] is not None and parts[p].detected
                    or (p == "features" and any(seg.detected for seg in segmented))]
    check = DriftCheck(model_name, bool(triggered_by), features.drifted_features, features.share,
                       features, note=_importance_note(features, cfg),
                       label=shared["label"], prediction=prediction,
                       label_note=shared["label_note"], prediction_note=prediction_note,
                       reference=source, triggered_by=triggered_by,
                       current_window_rows=window.window_rows, segments=segmented)
    if cfg.save_reports if save_reports is None else save_reports:
        directory = report_directory(ws.reports.root, model_name)
        check.reports = write_reports(
            directory, check.as_dict(), reference_sample=profile.report_sample,
            current_sample=sample_rows(current, cfg.report_rows), schema=schema, config=cfg,
            rendered=shared["rendered"], defer=defer_render)
        shared["rendered"] = check.reports
    log.info("drift %s: %d/%d features drifted (%s) -> %s%s", model_name,
             len(features.drifted_features), len(features.features), _rule(cfg),
             "DETECTED" if check.detected else "none",
             f" (by {', '.join(triggered_by)})" if triggered_by else "")
    return check


def _importance_note(features: DriftReport, cfg: DriftConfig) -> str:
    """What the importance rule left out of the decision, in words ("" when nothing)."""
    if not features.below_importance:
        return ""
    shares = {f.feature: f.importance for f in features.features}
    named = ", ".join(f"{name} ({shares[name]:.3f})" for name in features.below_importance)
    counted = "" if features.detected else "; no drifted feature left to trigger retraining"
    return (f"drifted but below [drift] min_importance {cfg.min_importance} of the model's "
            f"importance, so not triggering: {named}{counted}")


def _segment_checks(ws: Workspace, production: ModelVersion, schema: Schema,
                    cfg: DriftConfig) -> list[SegmentedDrift]:
    """``[drift] segments``: the check per value of each segment column, on the training
    window's and the newer rows' samples (at most ``max_rows`` each, drawn in the scan)."""
    available = ws.store.scan().collect_schema()
    for column in cfg.segments:
        if column not in available:
            raise DataValidationError(column, "[drift] segments names a column the feature "
                                              "store does not have")
    columns = list(dict.fromkeys([*schema.features, *cfg.segments]))

    def sample(lf):
        rows = count_rows(lf)
        large = rows > cfg.max_rows
        return sample_window(lf, cfg.max_rows, columns=columns, rows=rows,
                             key=sampling_key(ws, lf) if large else None).frame

    reference = sample(ws.store.rows(production.train_start, production.train_end, labeled=False))
    current = sample(ws.store.rows(after=production.train_end, labeled=False))
    out = [segment_drift(reference, current, column, schema, cfg, cfg.segment_min_rows)
           for column in cfg.segments]
    for seg in out:
        for s in seg.drifted:
            log.info("drift %s: segment %s=%s: %s drifted", production.model_name, seg.column,
                     s.value, ", ".join(s.drifted_features))
    return out


def _rule(cfg: DriftConfig) -> str:
    if cfg.decision == "share":
        return f"share rule, threshold {cfg.drift_share:.2f}"
    return f"{'Benjamini-Hochberg' if cfg.decision == 'bh' else 'Bonferroni'} at alpha {cfg.alpha}"
