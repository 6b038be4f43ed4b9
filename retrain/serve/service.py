"""The prediction service without HTTP: route a request, predict with the version it is routed
to, queue the log row; keep the loaded versions in step with the registry.

A request never waits for the database in the normal case: routing is cached by the
``ABTestingManager``, versions stay loaded, and log rows go to the ``LogWriter``'s queue. A
maintenance thread re-reads the registry every ``refresh_seconds``: which models exist, each
model's routing state (production and the active experiment's two versions); it loads newly
routed versions, then hands the states to the manager's routing cache (so requests route on
them without reading the database themselves) and unloads the versions no longer routed.

While the registry cannot be read, requests keep being answered by the versions loaded and
the last routing state read; ``/health`` says the registry is unreachable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from numbers import Real
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from retrain.config import ServeConfig
from retrain.errors import RegistryError, RetrainError
from retrain.experiments.routing import Router, routed_versions
from retrain.experiments.store import active_experiment
from retrain.registry import Registry
from retrain.serve.models import LoadedVersion, ModelCache
from retrain.serve.writer import LogWriter

log = logging.getLogger("retrain.serve")

PREDICTIONS, FEEDBACK = "predictions", "feedback"


class UnknownModel(RegistryError):
    """No registered model has this name."""


class NotServing(RegistryError):
    """The model cannot answer now (no production version, registry unreachable, log full)."""


@dataclass(frozen=True)
class Prediction:
    request_id: str
    model: str
    version: str
    variant: str
    prediction: Any  # the class (binary, multiclass) or the value (regression)
    probability: float | None  # binary: the positive class's; multiclass: the predicted one's
    probabilities: dict[str, float] | None = None  # multiclass: each class's

    def as_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies and costs more than the prediction.
        out = {"request_id": self.request_id, "model": self.model, "version": self.version,
               "variant": self.variant, "prediction": self.prediction,
               "probability": self.probability}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        return out


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class PredictionService:
    """Serves every registered model of one registry through an ``ABTestingManager``."""

    def __init__(self, registry: Registry, manager: Any, config: ServeConfig,
                 writer: LogWriter | None = None):
        self.registry = registry
        self.manager = manager
        self.config = config
        self.cache = ModelCache(registry, retry_seconds=max(5.0, config.refresh_seconds),
                                unknown_category=config.unknown_categories)
        self.writer = writer or LogWriter(
            {PREDICTIONS: manager.log_predictions, FEEDBACK: manager.log_feedback},
            batch_size=config.log_batch_size, flush_seconds=config.log_flush_seconds,
            max_queue=config.log_queue_size)
        # The manager's routing cache, kept warm by the maintenance thread (None for a
        # manager without one: its route() then reads the registry when its cache expires).
        router = getattr(manager, "router", None)
        self._router: Router | None = router if isinstance(router, Router) else None
        self._known: frozenset[str] = frozenset()
        self._registry = {"reachable": False, "checked_at": None, "error": "not checked yet"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Read the registry and load the routed versions, then keep them in step. An
        unreachable registry is logged, not fatal: the thread keeps trying."""
        self.refresh()
        self.writer.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._maintain, name="retrain-serve-refresh",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> int:
        """Stop refreshing and write the queued log rows; returns the rows left unwritten."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        return self.writer.close(timeout)

    def _maintain(self) -> None:
        # Refreshes start every refresh_seconds (not refresh_seconds after the last one
        # ended), so a change is served at most refresh_seconds plus one refresh's own time
        # (reading the registry, loading the versions traffic moves to) after it commits.
        interval = self.config.refresh_seconds
        took = 0.0
        while not self._stop.wait(max(0.0, interval - took)):
            started = time.monotonic()
            self.refresh()
            took = time.monotonic() - started

    def refresh(self) -> None:
        """Re-read the registry: models, routed versions; load new ones, unload stale ones."""
        router = self._router
        states = None
        try:
            names = frozenset(m.name for m in self.registry.models())
            if router is not None:
                generation = router.generation
                states = router.read_all(names)
                routed = {name: routed_versions(state) for name, state in states.items()}
            else:
                routed = {name: self._routed_versions(name) for name in names}
        except (SQLAlchemyError, RetrainError, OSError) as exc:
            if router is not None:
                router.hold(self._hold_seconds())  # requests route on the last states read
            if self._registry["reachable"] or self._registry["checked_at"] is None:
                log.error("the registry is not reachable: %s", exc)
            self._registry = {"reachable": False, "checked_at": _utcnow(),
                              "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
            return
        if not self._registry["reachable"] and self._registry["checked_at"] is not None:
            log.warning("the registry is reachable again")
        self._known = names
        self._registry = {"reachable": True, "checked_at": _utcnow(), "error": None}
        wanted = {v for versions in routed.values() for v in versions}
        # Versions used in the last two periods stay: the routing cache may still send a few
        # requests to the version a promotion just replaced.
        self.cache.retain(wanted, idle_seconds=2 * self.config.refresh_seconds + 1)
        for version_id in sorted(wanted - set(self.cache.loaded())):
            try:
                self.cache.get(version_id)
            except RetrainError:
                pass  # logged by the cache; requests for it get a 503 until it is fixed
        if states is not None:
            # Routed versions are loaded before traffic reaches them. The states stay valid for
            # a period beyond the next refresh, so requests never find them expired (and read
            # the database on the event loop) while this thread keeps up.
            router.prime(states, self._hold_seconds(), generation)

    def _hold_seconds(self) -> float:
        return max(self._router.cache_seconds, 2 * self.config.refresh_seconds)

    def _routed_versions(self, model_name: str) -> set[str]:
        production = self.registry.production_version(model_name)
        versions = {production.version_id} if production is not None else set()
        experiment = self._active_experiment(model_name)
        if experiment is not None:
            versions |= {experiment.version_a, experiment.version_b}
        return versions

    def _active_experiment(self, model_name: str):
        return active_experiment(self.registry, model_name)

    # Requests -------------------------------------------------------------------------------
    def _check_model(self, model_name: str) -> None:
        if model_name not in self._known:
            if not self._registry["reachable"]:
                raise NotServing(f"the registry is not reachable ({self._registry['error']})")
            known = ", ".join(sorted(self._known)) or "none yet"
            raise UnknownModel(f"no registered model {model_name!r} (registered: {known})")

    def route(self, model_name: str, request_id: str, entity_id: str | int | None = None):
        """The ``Route`` of a request: on ``entity_id`` if given, else on ``request_id``.
        Raises UnknownModel or NotServing."""
        self._check_model(model_name)
        key = request_id if entity_id is None else str(entity_id)
        try:
            return self.manager.route(model_name, key)
        except RegistryError as exc:
            raise NotServing(str(exc)) from None
        except SQLAlchemyError as exc:
            raise NotServing(f"the registry is not reachable: {type(exc).__name__}") from None

    def answer(self, route, loaded: LoadedVersion, request_id: str,
               features: dict[str, Any]) -> Prediction:
        """Predict with the version the request is routed to and queue the log row.
        Raises FeatureValidationError if the row does not fit the version's schema."""
        predictor = loaded.predictor
        label, probability, probabilities = predictor.predict(loaded.encoder.encode(features))
        self.writer.submit(PREDICTIONS, {
            "request_id": request_id, "model_name": loaded.model_name,
            "version_id": route.version_id, "variant": route.variant,
            "experiment_id": route.experiment_id,
            "prediction": _as_number(label, predictor.classes, predictor.task),
            "probability": probability, "at": _utcnow(),
            "probabilities": None if probabilities is None else list(probabilities.values())})
        return Prediction(request_id, loaded.model_name, route.version_id, route.variant,
                          _plain(label), probability, probabilities)

    def predict(self, model_name: str, request_id: str, features: dict[str, Any],
                entity_id: str | int | None = None) -> Prediction:
        """Route, load the version if needed (VersionUnavailable for a broken artifact),
        predict, queue the log row."""
        route = self.route(model_name, request_id, entity_id)
        return self.answer(route, self.cache.get(route.version_id), request_id, features)

    def label_problem(self, model_name: str | None, label: float | None) -> str | None:
        """Why ``label`` cannot be an outcome of ``model_name``'s predictions, or None:
        binary, 0 or 1 (1 for the positive class, the model's second); multiclass, the
        class's position in the model's classes; regression, the true value."""
        if label is None:
            return None
        loaded = None if model_name is None else self.cache.of_model(model_name)
        task = "binary" if loaded is None else loaded.predictor.task
        if model_name is not None and loaded is None:
            return None  # not loaded here: any finite number, checked when it is judged
        if task == "regression":
            return None
        if task == "multiclass":
            classes = loaded.predictor.classes
            if label in range(len(classes)):
                return None
            return (f"must be a class's position in the model's classes, 0 to "
                    f"{len(classes) - 1} ({', '.join(map(str, classes[:10]))}), got {label!r}")
        if label in (0, 1):
            return None
        return (f"must be 0 or 1 (1 for the model's positive class, its second class), got "
                f"{label!r}" + ("" if model_name else "; name the model (\"model\") to send the "
                                "label of a multiclass or regression model"))

    def feedback(self, request_id: str, label: float | None = None, reward: float | None = None,
                 model_name: str | None = None) -> None:
        """Queue the outcome of a request; NotServing if the queue is full."""
        if model_name is not None:
            self._check_model(model_name)
        accepted = self.writer.submit(FEEDBACK, {
            "request_id": request_id, "model_name": model_name, "label": label,
            "reward": reward, "at": _utcnow()})
        if not accepted:
            raise NotServing("the feedback queue is full (the registry database is not "
                             "accepting writes); retry later")

    # Reporting ------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Each model's production version and active experiment, read from the registry now."""
        out = []
        for name in sorted(self._known):
            try:
                production = self.registry.production_version(name)
                experiment = self._active_experiment(name)
            except SQLAlchemyError as exc:
                raise NotServing(f"the registry is not reachable: {type(exc).__name__}") from None
            out.append({
                "name": name,
                "production_version": production.version_id if production else None,
                "experiment": None if experiment is None else {
                    "id": experiment.id, "kind": experiment.kind, "status": experiment.status,
                    "version_a": experiment.version_a, "version_b": experiment.version_b,
                    "traffic_b": experiment.traffic_b, "strategy": experiment.strategy,
                    "step": experiment.step, "started_at": experiment.started_at,
                    "ends_at": experiment.ends_at},
                "loaded_versions": self.cache.loaded(name),
            })
        return out

    def health(self) -> dict[str, Any]:
        """ok | degraded (log writes failing or refused, a broken artifact) | unavailable
        (the registry cannot be read). Reads no database: the refresh thread's last check."""
        registry = dict(self._registry)
        broken = self.cache.broken()
        if not registry["reachable"]:
            status = "unavailable"
        elif broken or not self.writer.healthy():
            status = "degraded"
        else:
            status = "ok"
        return {"status": status, "registry": registry, "models": sorted(self._known),
                "loaded_versions": self.cache.loaded(), "broken_versions": broken,
                "log": self.writer.stats(), "process": os.getpid()}


def _plain(label: Any) -> Any:
    """A class label as a JSON value (numpy scalars are not)."""
    return label.item() if hasattr(label, "item") else label


def _as_number(label: Any, classes: list[Any], task: str = "binary") -> float:
    """The prediction as the log stores it: a value (regression); a class's position in the
    model's classes (multiclass, as feedback labels give it); binary: the label if it is a
    number, else 1.0 for the positive class and 0.0 for the other."""
    if task == "multiclass":
        return float(classes.index(label))
    if isinstance(label, (Real, bool)) or hasattr(label, "__float__") and not isinstance(label, str):
        return float(label)
    return 1.0 if label == classes[1] else 0.0
