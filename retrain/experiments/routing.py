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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from hashlib import blake2b

from sqlmodel import select

from retrain.errors import DataValidationError, RegistryError
from retrain.registry import Registry
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment, ModelVersion

_SCALE = 2 ** 64


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


class Router:
    """Routes keys for any model of a registry, with the per-model state cached."""

    def __init__(self, registry: Registry, cache_seconds: float):
        if cache_seconds < 0:
            raise ValueError(f"cache_seconds must be >= 0, got {cache_seconds}")
        self.registry = registry
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, RoutingState]] = {}
        self._generation = 0
        self._lock = threading.Lock()  # one registry read per model per expiry, not one per thread

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
            state = load_state(self.registry, model_name)
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
        """Forget every cached state: the next decision reads the registry."""
        self._generation += 1
        self._cache.clear()  # in place: ABTestingManager.route reads this very dict
