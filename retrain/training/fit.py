"""The CPU-heavy part of training a candidate, apart from its registration.

``fit_candidate(job)`` fits one model on its training rows, scores its holdout, computes its
metrics and its drift reference profile (with the model's permutation importances on its
holdout, ``retrain.training.importance``), and returns them as a ``FitResult``. It reads no
file and writes nothing: everything it needs is in the ``FitJob`` (picklable), so it can run
in the run's process, in a thread, in a worker process or on a Dask worker on another
machine. Registration (the artifact, the version row, the audit log) stays in the run's
process (``retrain.training.candidates``).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from retrain.data import Schema
from retrain.drift.profile import ReferenceProfile, with_holdout, with_importance
from retrain.errors import RetrainError
from retrain.estimators import EstimatorSource, available_cores
from retrain.modeling import TrainedModel, encode_target, fit_model, resolved_params
from retrain.stats.metrics import compute_metrics
from retrain.tasks import Task
from retrain.training.importance import permutation_importance

# Kinds that take every core unless told otherwise, and the parameter that tells them.
# LightGBM and XGBoost choose one or two threads themselves (retrain.estimators); a
# ``sklearn`` estimator's threads are its own params' business.
_THREADS_PARAM = {"random_forest": "n_jobs"}


class FitJob:
    """What fitting one model needs: its section's kind, params and seed, the training and
    holdout rows, the features, and the window's drift reference profile (without the
    holdout part, which the fit adds).

    ``concurrency``: how many fits share the cores of the machine this one runs on (a pool of
    four threads: 4); each takes its share. None: the Dask worker's thread count (one worker
    per machine), else 1.

    A plain slotted class, like ``TrainingData``: an orchestrator that walks its parameters
    looking for futures gives up on it at once instead of walking two data frames.
    """

    __slots__ = ("model", "kind", "params", "seed", "source", "task", "target", "schema",
                 "train", "holdout", "reference", "concurrency")

    def __init__(self, model: str, kind: str, params: dict[str, Any], seed: int,
                 source: EstimatorSource, task: Task, target: str, schema: Schema,
                 train: pl.DataFrame, holdout: pl.DataFrame,
                 reference: ReferenceProfile | None = None, concurrency: int | None = 1):
        self.model, self.kind, self.params, self.seed = model, kind, dict(params), seed
        self.source, self.task, self.target, self.schema = source, task, target, schema
        self.train, self.holdout, self.reference = train, holdout, reference
        self.concurrency = concurrency

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return (f"FitJob({self.model!r}, {self.kind}, {self.train.height} training rows, "
                f"{self.holdout.height} held out)")


class FitResult:
    """What a fit gave: the trained model, its holdout metrics and its reference profile
    (``ReferenceProfile.to_bytes()``, None with ``profile_warning`` saying why), or the error
    that stopped it; and where it ran (``pid`` and ``host`` of the process, ``worker``: the
    Dask worker's address, if any), with how many threads and for how long."""

    __slots__ = ("model", "trained", "metrics", "reference_profile", "profile_warning",
                 "error", "pid", "host", "worker", "threads", "seconds")

    def __init__(self, model: str, *, trained: TrainedModel | None = None,
                 metrics: dict[str, float] | None = None, reference_profile: bytes | None = None,
                 profile_warning: str | None = None, error: str | None = None,
                 pid: int = 0, host: str = "", worker: str | None = None, threads: int = 1,
                 seconds: float = 0.0):
        self.model, self.trained, self.metrics = model, trained, metrics
        self.reference_profile, self.profile_warning = reference_profile, profile_warning
        self.error, self.pid, self.host, self.worker = error, pid, host, worker
        self.threads, self.seconds = threads, seconds

    __getstate__ = FitJob.__getstate__
    __setstate__ = FitJob.__setstate__

    @property
    def where(self) -> str:
        """Where it ran, for a log line: ``Dask worker tcp://...`` or ``pid 123 on host``."""
        place = f"pid {self.pid} on {self.host}"
        return f"Dask worker {self.worker} ({place})" if self.worker else place


def fit_candidate(job: FitJob) -> FitResult:
    """Fit ``job``'s model, score its holdout, compute its metrics and reference profile.

    A failure of this model (its estimator refusing the data, a bad parameter) is returned
    as the result's ``error``, whatever its type, so that the other models of the run, which
    may be fitting in the same worker, go on."""
    started = time.perf_counter()  # a failure's seconds
    dask_worker = _dask_worker()
    threads = threads_per_fit(job.concurrency if job.concurrency is not None else
                              (dask_worker.state.nthreads if dask_worker is not None else 1))
    where = {"pid": os.getpid(), "host": socket.gethostname(), "threads": threads,
             "worker": dask_worker.address if dask_worker is not None else None}
    try:
        return fit(job, threads, where)
    except Exception as exc:  # noqa: BLE001 - one model's failure, reported as its result
        error = str(exc) if isinstance(exc, RetrainError) else f"{type(exc).__name__}: {exc}"
        return FitResult(job.model, error=error, seconds=time.perf_counter() - started, **where)


def fit(job: FitJob, threads: int | None = None, where: dict[str, Any] | None = None) -> FitResult:
    """``fit_candidate`` that raises what stops the fit (in the caller's process)."""
    started = time.perf_counter()
    threads = threads or threads_per_fit(job.concurrency or 1)
    where = where or {"pid": os.getpid(), "host": socket.gethostname(), "threads": threads}
    model = _fit(job, threads)
    y, _ = encode_target(job.holdout.get_column(job.target), model.classes, model.task)
    holdout_scores = model.predict_scores(job.holdout)
    metrics = compute_metrics(y, holdout_scores, task=model.task)
    profile, warning = _profile_bytes(job.reference, holdout_scores, y, model.task,
                                      model, job.holdout)
    return FitResult(job.model, trained=model, metrics=metrics, reference_profile=profile,
                     profile_warning=warning, seconds=time.perf_counter() - started, **where)


def threads_per_fit(concurrency: int) -> int:
    """Each of ``concurrency`` fits sharing this process's cores takes an equal share (at
    least one): a random forest of one of two fits at once on two cores fits on one."""
    return max(1, available_cores() // max(1, concurrency))


def _fit(job: FitJob, threads: int) -> TrainedModel:
    params = job.params
    param = _THREADS_PARAM.get(job.kind)
    shared = job.concurrency is None or job.concurrency > 1
    if param is not None and param not in params and shared:
        params = {**params, param: threads}
    model = fit_model(job.kind, params, job.train, job.schema, job.target, job.seed,
                      job.source, job.task)
    if params is not job.params:
        # The version records its section's params, as a fit on its own would: the threads
        # a fit was given say where it ran, not what the model is.
        model = replace(model, params=resolved_params(job.kind, job.params))
    return model


def _profile_bytes(reference: ReferenceProfile | None, holdout_scores: np.ndarray,
                   holdout_labels: np.ndarray, task: str, model: TrainedModel | None = None,
                   holdout: pl.DataFrame | None = None) -> tuple[bytes | None, str | None]:
    """The version's reference profile (with a classifier's calibration and the model's
    permutation importances on ``holdout``), serialised, or None and why: a profile never
    stops a registration (drift checks then read the reference window)."""
    if reference is None:
        return None, None  # the run's process could not compute the window's (it said why)
    try:
        profile = with_holdout(reference, holdout_scores, holdout_labels, task)
        if model is not None and holdout is not None:
            profile = with_importance(profile, permutation_importance(model, holdout,
                                                                      holdout_labels))
        return profile.to_bytes(), None
    except (RetrainError, ValueError, OSError, pl.exceptions.PolarsError) as exc:
        return None, str(exc)


def _dask_worker():
    """The Dask worker running this fit, or None (not in one, or Dask not loaded)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker  # late: loaded already, by the worker running us
    try:
        return get_worker()
    except ValueError:
        return None
