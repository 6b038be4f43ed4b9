"""Model versions loaded for serving: a cache keyed by version id, and a one-row predictor.

A version is loaded (its artifact's sha256 verified by the registry) the first time traffic is
routed to it and dropped when nothing routes to it any more, so promotions, rollbacks and new
experiments need no restart. An artifact that fails its check is remembered as broken for a
while: requests for it fail fast instead of re-reading the file each time, and other versions
keep serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from retrain.errors import ArtifactIntegrityError, RegistryError
from retrain.modeling import TrainedModel
from retrain.registry import Registry
from retrain.serve.schemas import FeatureEncoder, UnknownCategory

log = logging.getLogger("retrain.serve")


class VersionUnavailable(RegistryError):
    """A version cannot serve (its artifact is missing or fails its sha256 check)."""


class OnePredictor:
    """Predicts one encoded row exactly as ``TrainedModel.predict`` does, without its
    per-call overhead (a polars frame, a thread pool): for one row that overhead is
    milliseconds, the prediction itself microseconds."""

    def __init__(self, model: TrainedModel):
        self.model = model
        self.classes = list(model.classes)
        self.task = model.task
        self._proba = self._choose(model) if model.task == "binary" else None

    @staticmethod
    def _choose(model: TrainedModel):
        estimator = model.estimator
        if model.kind == "lightgbm":
            # One thread: for one row, waking OpenMP workers costs ~50x the prediction.
            return lambda X: float(estimator.predict(X, num_threads=1)[0])
        trees = getattr(estimator, "estimators_", None)
        if model.kind == "random_forest" and trees is not None:
            # Sum the trees in order and divide, as RandomForestClassifier.predict_proba does
            # with one job (so the result is the same to the bit), minus its joblib dispatch.
            def forest(X: np.ndarray) -> float:
                X32 = np.asarray(X, dtype=np.float32)
                total = trees[0].predict_proba(X32, check_input=False)
                for tree in trees[1:]:
                    total = total + tree.predict_proba(X32, check_input=False)
                return float((total / len(trees))[0, 1])
            return forest
        return lambda X: float(model.scores_of_matrix(X)[0])

    def predict(self, row: np.ndarray) -> tuple[Any, float | None, dict[str, float] | None]:
        """For a (1, n) row: (what the model predicts, the probability of that answer's
        class or of the positive class, each class's probability).

        Binary: (class at threshold 0.5, the positive class's probability, None); multiclass:
        (the most probable class, its probability, every class's); regression: (the value,
        None, None)."""
        if self._proba is not None:
            proba = self._proba(row)
            return (self.classes[1] if proba >= 0.5 else self.classes[0]), proba, None
        scores = self.model.scores_of_matrix(row)
        if self.task == "regression":
            return float(scores[0]), None, None
        probabilities = [float(p) for p in scores[0]]
        best = int(np.argmax(scores[0]))
        return (self.classes[best], probabilities[best],
                {str(c): p for c, p in zip(self.classes, probabilities)})


@dataclass
class LoadedVersion:
    version_id: str
    model_name: str
    kind: str
    encoder: FeatureEncoder
    predictor: OnePredictor
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)


class ModelCache:
    """Versions by id, loaded on first use (sha256 verified), evicted when no longer routed."""

    def __init__(self, registry: Registry, *, retry_seconds: float = 5.0,
                 unknown_category: UnknownCategory = "reject"):
        self.registry = registry
        self.retry_seconds = retry_seconds
        self.unknown_category = unknown_category
        self._versions: dict[str, LoadedVersion] = {}
        self._broken: dict[str, tuple[float, str]] = {}  # version id -> (retry after, why)
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def of_model(self, model_name: str) -> LoadedVersion | None:
        """One loaded version of ``model_name`` (they share its task and classes), if any."""
        return next((v for v in list(self._versions.values()) if v.model_name == model_name), None)

    def peek(self, version_id: str) -> LoadedVersion | None:
        """The version if it is loaded already (never reads a file)."""
        loaded = self._versions.get(version_id)
        if loaded is not None:
            loaded.last_used = time.monotonic()
        return loaded

    def get(self, version_id: str) -> LoadedVersion:
        """The loaded version; loads it on first use. Raises VersionUnavailable for a
        broken artifact, RegistryError for an unknown version."""
        loaded = self._versions.get(version_id)
        if loaded is not None:
            loaded.last_used = time.monotonic()
            return loaded
        with self._lock:
            lock = self._loading.setdefault(version_id, threading.Lock())
        with lock:  # one load per version, however many requests wait for it
            loaded = self._versions.get(version_id)
            if loaded is not None:
                return loaded
            broken = self._broken.get(version_id)
            if broken is not None and broken[0] > time.monotonic():
                raise VersionUnavailable(broken[1])
            loaded = self._load(version_id)
            self._versions[version_id] = loaded
            self._broken.pop(version_id, None)
            return loaded

    def _load(self, version_id: str) -> LoadedVersion:
        started = time.perf_counter()
        version = self.registry.get_version(version_id)
        try:
            model = self.registry.load(version)
        except ArtifactIntegrityError as exc:
            why = (f"version {version_id} cannot serve: {exc} (the service keeps serving other "
                   f"versions and checks the file again in {self.retry_seconds:g}s)")
            self._broken[version_id] = (time.monotonic() + self.retry_seconds, why)
            log.error("%s", why)
            raise VersionUnavailable(why) from None
        loaded = LoadedVersion(version_id, version.model_name, model.kind,
                               FeatureEncoder(model.preprocessing, self.unknown_category,
                                              reject_nan=True),
                               OnePredictor(model))
        log.info("loaded %s (%s, sha256 verified) in %.0f ms", version_id, model.kind,
                 (time.perf_counter() - started) * 1000)
        return loaded

    def retain(self, version_ids: Iterable[str], idle_seconds: float = 0.0) -> list[str]:
        """Drop every loaded version not in ``version_ids`` and unused for ``idle_seconds``;
        returns the ids dropped."""
        keep = set(version_ids)
        idle_since = time.monotonic() - idle_seconds
        with self._lock:
            dropped = [v for v, loaded in self._versions.items()
                       if v not in keep and loaded.last_used <= idle_since]
            for version_id in dropped:
                self._versions.pop(version_id, None)
                self._loading.pop(version_id, None)
            for version_id in [v for v in self._broken if v not in keep]:
                self._broken.pop(version_id, None)
        for version_id in dropped:
            log.info("unloaded %s: no traffic is routed to it any more", version_id)
        return dropped

    def loaded(self, model_name: str | None = None) -> list[str]:
        """Ids of the loaded versions (of one model, if given)."""
        return sorted(v for v, loaded in list(self._versions.items())
                      if model_name is None or loaded.model_name == model_name)

    def broken(self) -> dict[str, str]:
        """Versions whose artifact failed its check, with the reason."""
        return {v: why for v, (_, why) in self._broken.items()}
