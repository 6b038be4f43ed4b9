"""Candidates: fit a model on the training window, score its holdout, register it."""

from __future__ import annotations

import logging

import polars as pl

from retrain.data import Schema
from retrain.drift.profile import with_holdout
from retrain.errors import DataValidationError, RetrainError
from retrain.estimators import EstimatorSource
from retrain.modeling import encode_target, fit_model, validate_params
from retrain.records import Record
from retrain.registry import ModelVersion
from retrain.registry.rules import CURRENT
from retrain.stats.metrics import compute_metrics
from retrain.training.data import TrainingData, TrainingSets
from retrain.training.features import candidate_features
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class Candidate(Record):
    """What training one model gave: the registered candidate and its holdout metrics, or the
    error that stopped it (the other models are trained anyway)."""

    model: str
    candidate_version: str | None
    metrics: dict[str, float] | None = None
    error: str | None = None
    features_added: list[str] = []  # new columns the candidate takes ([data] new_columns)
    new_columns_ignored: list[str] = []  # new columns it leaves out


def train_candidates(ws: Workspace, models: list[str], data: TrainingData | TrainingSets,
                     reason: str = "", production: dict[str, ModelVersion | None] | None = None
                     ) -> dict[str, Candidate]:
    """One candidate per model, trained on its dataset's window (``data``) and registered;
    ``production``: each model's production version as the run read it (default: now)."""
    for name in models:  # every model's parameters before any training starts
        cfg = ws.settings.models[name]
        validate_params(cfg.kind, cfg.params, cfg.seed, f"[models.{name}] params",
                        EstimatorSource.of(ws.settings, name), data.of_model(name).task)
    out: dict[str, Candidate] = {}
    for name in models:
        window = data.of_model(name)
        view = ws.for_model(name)
        try:
            current = ws.registry.production_of(name, (production or {}).get(name, CURRENT))
            check_production_compatible(view, name, current, window.task)
            features = candidate_features(view, window.schema, current)
            version = train_candidate(view, name, window, reason=reason, schema=features.schema)
            out[name] = Candidate(model=name, candidate_version=version.version_id,
                                  metrics=version.metrics, features_added=list(features.added),
                                  new_columns_ignored=list(features.ignored))
        except RetrainError as exc:
            log.error("training %s failed: %s", name, exc)
            out[name] = Candidate(model=name, candidate_version=None, error=str(exc))
    return out


def check_production_compatible(ws: Workspace, model_name: str, production=CURRENT,
                                task: str | None = None) -> None:
    """The production version's features must still exist with the same type, and its
    target must still be of the same task (a change of task is an error, not a retrain)."""
    production = ws.registry.production_of(model_name, production)
    if production is None:
        return
    if task is not None and production.task != task:
        raise DataValidationError(ws.settings.data.target, (
            f"task changed: {production.version_id} was trained for a {production.task} "
            f"target, the data is now {task}; a model keeps its task (train a new model "
            "under another name for the new one)"))
    ws.store.schema(expected=Schema.from_dict(production.feature_schema))


def train_candidate(ws: Workspace, model_name: str, data: TrainingData,
                    reason: str = "", schema: Schema | None = None) -> ModelVersion:
    """Fit ``model_name`` on the window (its features: ``schema``, default every feature of
    the window), score its holdout, register it as a candidate."""
    cfg = ws.settings.models[model_name]
    target = ws.settings.data.target
    schema = schema or data.schema
    log.info("training %s (%s) on %d rows", model_name, cfg.kind, data.train.height)
    model = fit_model(cfg.kind, cfg.params, data.train, schema, target, cfg.seed,
                      EstimatorSource.of(ws.settings, model_name), data.task)
    y, _ = encode_target(data.holdout.get_column(target), model.classes, model.task)
    holdout_proba = model.predict_scores(data.holdout)
    metrics = compute_metrics(y, holdout_proba, task=model.task)
    version = ws.registry.register_version(
        model_name=model_name, model=model, train_start=data.window.start,
        train_end=data.window.end, holdout_start=data.holdout_window.start,
        row_count=data.train.height + data.holdout.height, holdout_rows=data.holdout.height,
        data_fingerprint=data.fingerprint, metrics=metrics, reason=reason,
        reference_profile=_profile_bytes(ws, data, schema, holdout_proba, y))
    log.info("registered %s: %s", version.version_id,
             ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return version


def _profile_bytes(ws: Workspace, data: TrainingData, schema: Schema, holdout_proba,
                   holdout_labels) -> bytes | None:
    """The version's drift reference profile, serialised; None (drift checks then read the
    reference window) if it cannot be computed: a profile never stops a registration."""
    try:
        profile = with_holdout(data.window_profile(ws, schema), holdout_proba, holdout_labels)
        return profile.to_bytes()
    except (RetrainError, ValueError, OSError, pl.exceptions.PolarsError) as exc:
        log.warning("no drift reference profile stored (checks will read the reference "
                    "window instead): %s", exc)
        return None
