"""Candidates: fit each model on the training window and score its holdout (where
``[orchestration]`` says: ``retrain.training.fit``, ``retrain.training.pools``), then register
it here, one model at a time."""

from __future__ import annotations

import logging
from contextlib import closing

import polars as pl

from retrain.data import Schema
from retrain.drift.profile import ReferenceProfile
from retrain.errors import DataValidationError, RetrainError
from retrain.estimators import EstimatorSource
from retrain.modeling import validate_params
from retrain.records import Record
from retrain.registry import ModelVersion
from retrain.registry.rules import CURRENT
from retrain.training.data import TrainingData, TrainingSets
from retrain.training.features import CandidateFeatures, candidate_features
from retrain.training.fit import FitJob, FitResult, fit, fit_candidate
from retrain.training.pools import ModelPool, local_pool
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class FittedBy(Record):
    """Where a candidate was fitted: the process (``pid`` on ``host``; ``worker``, the Dask
    worker's address, if one), with how many threads, in how many seconds."""

    pid: int
    host: str
    worker: str | None = None
    threads: int = 1
    seconds: float = 0.0


class Candidate(Record):
    """What training one model gave: the registered candidate and its holdout metrics, or the
    error that stopped it (the other models are trained anyway)."""

    model: str
    candidate_version: str | None
    metrics: dict[str, float] | None = None
    error: str | None = None
    features_added: list[str] = []  # new columns the candidate takes ([data] new_columns)
    new_columns_ignored: list[str] = []  # new columns it leaves out
    fitted_by: FittedBy | None = None


def train_candidates(ws: Workspace, models: list[str], data: TrainingData | TrainingSets,
                     reason: str = "", production: dict[str, ModelVersion | None] | None = None,
                     pool: ModelPool | None = None) -> dict[str, Candidate]:
    """One candidate per model, trained on its dataset's window (``data``) and registered;
    ``production``: each model's production version as the run read it (default: now);
    ``pool``: where the models are fitted (default: as ``[orchestration]`` says, without an
    orchestrator).

    The fits may run at once, elsewhere; the registrations are made here, one model at a
    time, as the fits come back, so that every write to the registry (versions, audit log)
    is this process's."""
    for name in models:  # every model's parameters before any training starts
        cfg = ws.settings.models[name]
        validate_params(cfg.kind, cfg.params, cfg.seed, f"[models.{name}] params",
                        EstimatorSource.of(ws.settings, name), data.of_model(name).task)
    pool = pool or local_pool(ws.settings.orchestration)
    out: dict[str, Candidate] = {}
    jobs: dict[str, FitJob] = {}
    features: dict[str, CandidateFeatures] = {}
    for name in models:
        try:
            jobs[name], features[name] = _fit_job(ws, name, data.of_model(name), production,
                                                  pool.concurrency)
        except RetrainError as exc:
            log.error("training %s failed: %s", name, exc)
            out[name] = Candidate(model=name, candidate_version=None, error=str(exc))
    if len(jobs) > 1:
        log.info("fitting %d models %s", len(jobs), pool.description)
    with closing(pool.map(fit_candidate, jobs)) as fitted:
        for name, result in fitted:
            out[name] = _register(ws.for_model(name), name, result, data.of_model(name),
                                  reason, features[name])
    return {name: out[name] for name in models}


def _fit_job(ws: Workspace, name: str, window: TrainingData,
             production: dict[str, ModelVersion | None] | None,
             concurrency: int | None) -> tuple[FitJob, CandidateFeatures]:
    """What fitting ``name`` needs, read here: its production version's features, the
    window's reference profile."""
    view = ws.for_model(name)
    current = ws.registry.production_of(name, (production or {}).get(name, CURRENT))
    check_production_compatible(view, name, current, window.task)
    features = candidate_features(view, window.schema, current)
    return fit_job(view, name, window, features.schema, concurrency), features


def fit_job(ws: Workspace, model_name: str, data: TrainingData, schema: Schema | None = None,
            concurrency: int | None = 1) -> FitJob:
    """The ``FitJob`` of ``model_name`` on the window ``data`` (its features: ``schema``,
    default every feature of the window)."""
    cfg = ws.settings.models[model_name]
    schema = schema or data.schema
    log.info("training %s (%s) on %d rows", model_name, cfg.kind, data.train.height)
    return FitJob(model_name, cfg.kind, cfg.params, cfg.seed,
                  EstimatorSource.of(ws.settings, model_name), data.task,
                  ws.settings.data.target, schema, data.train, data.holdout,
                  _window_profile(ws, data, schema), concurrency)


def _register(ws: Workspace, name: str, result: FitResult | Exception,
              data: TrainingData, reason: str, features: CandidateFeatures) -> Candidate:
    """``name``'s candidate from what its fit gave: registered, or the error."""
    if isinstance(result, Exception):  # the fit never returned: its worker died, say
        error = f"fitting failed: {type(result).__name__}: {result}"
        log.error("training %s failed: %s", name, error)
        return Candidate(model=name, candidate_version=None, error=error)
    where = {"fitted_by": FittedBy(pid=result.pid, host=result.host, worker=result.worker,
                                   threads=result.threads, seconds=round(result.seconds, 3))}
    if result.error is not None:
        log.error("training %s failed (%s): %s", name, result.where, result.error)
        return Candidate(model=name, candidate_version=None, error=result.error, **where)
    try:
        version = register_fit(ws, name, data, result, reason)
    except RetrainError as exc:
        log.error("training %s failed: %s", name, exc)
        return Candidate(model=name, candidate_version=None, error=str(exc), **where)
    return Candidate(model=name, candidate_version=version.version_id, metrics=version.metrics,
                     features_added=list(features.added),
                     new_columns_ignored=list(features.ignored), **where)


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
    the window) in this process, score its holdout, register it as a candidate."""
    result = fit(fit_job(ws, model_name, data, schema))  # its errors are raised as they are
    return register_fit(ws, model_name, data, result, reason)


def register_fit(ws: Workspace, model_name: str, data: TrainingData, result: FitResult,
                 reason: str = "") -> ModelVersion:
    """Register what a fit of ``model_name`` on the window ``data`` gave, as a candidate."""
    if result.profile_warning:
        log.warning("no drift reference profile stored (checks will read the reference "
                    "window instead): %s", result.profile_warning)
    version = ws.registry.register_version(
        model_name=model_name, model=result.trained, train_start=data.window.start,
        train_end=data.window.end, holdout_start=data.holdout_window.start,
        row_count=data.train.height + data.holdout.height, holdout_rows=data.holdout.height,
        data_fingerprint=data.fingerprint, metrics=result.metrics, reason=reason,
        reference_profile=result.reference_profile)
    log.info("registered %s: %s (fitted in %.1f s by %s)", version.version_id,
             ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()), result.seconds,
             result.where)
    return version


def _window_profile(ws: Workspace, data: TrainingData, schema: Schema) -> ReferenceProfile | None:
    """The window's drift reference profile for ``schema`` (read here, once per schema; the
    fit adds its holdout part); None (drift checks then read the reference window) if it
    cannot be computed: a profile never stops a registration."""
    try:
        return data.window_profile(ws, schema)
    except (RetrainError, ValueError, OSError, pl.exceptions.PolarsError) as exc:
        log.warning("no drift reference profile stored (checks will read the reference "
                    "window instead): %s", exc)
        return None
