"""Deterministic, sticky traffic routing between two versions of a model.

A key (a request or entity id) goes to version B when its bucket is below the experiment's
``traffic_b``. The bucket is keyed BLAKE2b of the key with the experiment's random salt,
8 bytes read as an unsigned integer, so it is uniform on [0, 2**64) and the same in every
process and after restarts. Raising ``traffic_b`` during a rollout only moves keys from A to
B: a key already on B stays there. A new salt per experiment means that the keys that were
unlucky in one test are not the same keys that are unlucky in the next.

The routing state of each model (production version, active experiment) is cached for
``cache_seconds``, so a decision costs one hash, and promotions, rollbacks, new tests and
rollout steps are picked up within that time without a restart.

A registry that cannot be read does not stop routing: a model keeps its last state read (the
failure is logged once per outage) and the read is retried at most every ``cache_seconds``
(at least a second), not on every decision; only a model whose state was never read fails.
A long-running process can keep the cache warm from a background thread (``read_all`` and
``prime``, as the prediction service does) so decisions never wait for the database.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from hashlib import blake2b
from typing import Iterable, Mapping

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from retrain.errors import DataValidationError, RegistryError, RetrainError
from retrain.registry import Registry
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment, ModelVersion

_SCALE = 2 ** 64
# What a failed registry read raises (a lost connection, a missing table, a locked file).
READ_ERRORS = (SQLAlchemyError, RetrainError, OSError)
# During an outage the read is retried at most this often even with a shorter cache.
MIN_RETRY_SECONDS = 1.0

log = logging.getLogger("retrain")


@dataclass(frozen=True)
class Route:
    """Where one key goes: the version that answers, its variant ("A", "B" or "production"
    when no experiment is active) and the experiment id (None without one)."""

    version_id: str
    variant: str
    experiment_id: str | None


def bucket(salt: str, key: str) -> float:
    """The key's position in [0, 1) for an experiment with ``salt``: B when below traffic_b."""
    data = key.encode() if isinstance(key, str) else _key_bytes(key)
    digest = blake2b(data, digest_size=8, key=salt.encode()).digest()
    return int.from_bytes(digest, "big") / _SCALE


def threshold(traffic_b: float) -> int:
    """The integer bucket bound for ``traffic_b``; keys with a hash below it go to B."""
    return min(_SCALE, max(0, int(traffic_b * _SCALE)))


@dataclass(frozen=True)
class RoutingState:
    """One model's routing at one moment (what the cache holds)."""

    model_name: str
    production: str | None
    experiment_id: str | None = None
    salt: bytes = b""
    threshold: int = 0
    route_a: Route | None = None
    route_b: Route | None = None

    def route(self, key: str) -> Route:
        if self.route_a is None:
            if self.production is None:
                raise RegistryError(f"model {self.model_name!r} has no production version "
                                    "and no active experiment to route to")
            return Route(self.production, "production", None)
        try:
            data = key.encode()
        except AttributeError:
            data = _key_bytes(key)
        digest = blake2b(data, digest_size=8, key=self.salt).digest()
        return self.route_b if int.from_bytes(digest, "big") < self.threshold else self.route_a


def _key_bytes(key) -> bytes:
    """Integer ids route like their decimal string; anything else is a caller's mistake."""
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise DataValidationError(None, f"the routing key must be a request or entity id (a string), "
                                    f"got {type(key).__name__} {key!r}")


def load_state(registry: Registry, model_name: str) -> RoutingState:
    """Read one model's production version and active experiment from the registry."""
    with registry.reading() as s:
        return _read_state(s, model_name)


def load_states(registry: Registry, model_names: Iterable[str]) -> dict[str, RoutingState]:
    """The routing state of each model, read in one session."""
    with registry.reading() as s:
        return {name: _read_state(s, name) for name in model_names}


def _read_state(s: Session, model_name: str) -> RoutingState:
    production = s.exec(select(ModelVersion.version_id).where(
        ModelVersion.model_name == model_name, ModelVersion.status == "production")).first()
    experiment = s.exec(select(Experiment).where(
        Experiment.model_name == model_name,
        Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))).first()
    if experiment is None:
        return RoutingState(model_name, production)
    return RoutingState(
        model_name, production, experiment.id, experiment.salt.encode(),
        threshold(experiment.traffic_b),
        Route(experiment.version_a, "A", experiment.id),
        Route(experiment.version_b, "B", experiment.id))


def routed_versions(state: RoutingState) -> set[str]:
    """The versions a state can send traffic to (production and the experiment's two)."""
    versions = {state.production} if state.production is not None else set()
    if state.route_a is not None:
        versions |= {state.route_a.version_id, state.route_b.version_id}
    return versions


class Router:
    """Routes keys for any model of a registry, with the per-model state cached."""

    def __init__(self, registry: Registry, cache_seconds: float):
        if cache_seconds < 0:
            raise ValueError(f"cache_seconds must be >= 0, got {cache_seconds}")
        self.registry = registry
        self.cache_seconds = cache_seconds
        self.retry_seconds = max(cache_seconds, MIN_RETRY_SECONDS)
        # model name -> (valid until, on time.monotonic(); state). An expired entry is still
        # the last state read: it serves while the registry cannot be read.
        self._cache: dict[str, tuple[float, RoutingState]] = {}
        self._generation = 0
        self._outage: str | None = None  # why the registry cannot be read, while it cannot
        self._lock = threading.Lock()  # one registry read per model per expiry, not one per thread

    @property
    def generation(self) -> int:
        """Bumped by ``refresh()``: a state read before a bump may be stale (see ``prime``)."""
        return self._generation

    def state(self, model_name: str) -> RoutingState:
        entry = self._cache.get(model_name)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        with self._lock:
            entry = self._cache.get(model_name)
            if entry is not None and entry[0] > time.monotonic():
                return entry[1]
            generation = self._generation
            try:
                state = load_state(self.registry, model_name)
            except READ_ERRORS as exc:
                if entry is None:
                    raise  # never read: there is nothing to fall back on
                self._failed(exc)
                # Keep the last state; try the registry again in retry_seconds, not per request.
                self._cache[model_name] = (time.monotonic() + self.retry_seconds, entry[1])
                return entry[1]
            self._recovered()
            # A refresh() during the read (a change made by this process) makes it stale.
            if generation == self._generation:
                self._cache[model_name] = (time.monotonic() + self.cache_seconds, state)
            return state

    def route(self, model_name: str, key: str) -> Route:
        entry = self._cache.get(model_name)
        if entry is None or entry[0] <= time.monotonic():
            return self.state(model_name).route(key)
        return entry[1].route(key)

    def refresh(self) -> None:
        """Expire every cached state: the next decision reads the registry (and falls back on
        the state it had if the registry cannot be read)."""
        self._generation += 1
        # In place: ABTestingManager.route reads this very dict.
        for name, (_, state) in list(self._cache.items()):
            self._cache[name] = (float("-inf"), state)

    # Keeping the cache warm from a background thread ----------------------------------------
    def read_all(self, model_names: Iterable[str]) -> dict[str, RoutingState]:
        """Read the routing state of ``model_names`` now, without caching it (``prime`` does).
        On a failed read the cached states keep serving for ``retry_seconds`` more, the
        failure is logged once per outage, and the error is raised."""
        try:
            states = load_states(self.registry, model_names)
        except READ_ERRORS as exc:
            self.hold()
            self._failed(exc)
            raise
        self._recovered()
        return states

    def prime(self, states: Mapping[str, RoutingState], hold_seconds: float | None = None,
              generation: int | None = None) -> None:
        """Cache ``states`` (from ``read_all``) for ``hold_seconds`` (default
        ``cache_seconds``). With ``generation`` (read before ``read_all``), nothing is cached
        if ``refresh()`` ran since: the states may predate a change made by this process."""
        hold = self.cache_seconds if hold_seconds is None else hold_seconds
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            until = time.monotonic() + hold
            for name, state in states.items():
                self._cache[name] = (until, state)

    def hold(self, seconds: float | None = None) -> None:
        """Keep serving every cached state for at least ``seconds`` more (default
        ``retry_seconds``): the registry cannot be read now."""
        with self._lock:
            until = time.monotonic() + (self.retry_seconds if seconds is None else seconds)
            for name, (expires, state) in list(self._cache.items()):
                if expires < until:
                    self._cache[name] = (until, state)

    def _failed(self, exc: BaseException) -> None:
        if self._outage is None:
            self._outage = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            log.warning("cannot read the routing state from the registry (%s); routing keeps "
                        "the last state read for %d model(s) and retries every %gs",
                        self._outage, len(self._cache), self.retry_seconds)

    def _recovered(self) -> None:
        if self._outage is not None:
            self._outage = None
            log.warning("the routing state is read from the registry again")
