"""The prediction service through registry outages and odd payloads: routing keeps its last
state while the registry cannot be read, the maintenance thread keeps the routing cache warm
so requests do not read the database, and numbers a float64 cannot hold are a 422."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy.exc import OperationalError

from retrain.experiments import ABTestingManager, routing
from retrain.serve.service import PredictionService
from abtest import MODEL
from serving import AUTH, features, locs


def registry_down(*args, **kwargs):
    raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))


class Reads:
    """Counts calls of a routing read function, optionally making them fail."""

    def __init__(self, function):
        self.function, self.calls, self.fail = function, 0, False

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.fail:
            registry_down()
        return self.function(*args, **kwargs)


@pytest.fixture
def reads(monkeypatch):
    """The per-decision read (``load_state``) and the maintenance read (``load_states``)."""
    one, many = Reads(routing.load_state), Reads(getattr(routing, "load_states", None))
    monkeypatch.setattr(routing, "load_state", one)
    monkeypatch.setattr(routing, "load_states", many, raising=False)
    return one, many


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic under the test's control (the routing cache's expiry runs on it)."""
    now = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


# Routing during an outage ---------------------------------------------------------------------

def test_a_failed_refresh_keeps_the_last_routing_state(manager, reads, caplog):  # noqa: F811
    one, _ = reads
    assert manager.route(MODEL, "k").version_id == "lightgbm-v1"
    manager.refresh()  # the cached state expires
    one.fail, one.calls = True, 0
    with caplog.at_level(logging.WARNING, logger="retrain"):
        routes = {manager.route(MODEL, f"k{i}").version_id for i in range(100)}
    assert routes == {"lightgbm-v1"}
    assert one.calls == 1, f"the registry was read {one.calls} times for 100 decisions, not once"
    warnings = [r.getMessage() for r in caplog.records if "routing state" in r.getMessage()]
    assert len(warnings) == 1 and "server closed the connection" in warnings[0], warnings


def test_an_outage_is_logged_once_and_its_end_too(manager, reads, caplog):  # noqa: F811
    one, _ = reads
    manager.route(MODEL, "k")
    one.fail = True
    with caplog.at_level(logging.WARNING, logger="retrain"):
        for _ in range(3):  # three retries (each after the state expired), one outage
            manager.refresh()
            assert manager.route(MODEL, "k").version_id == "lightgbm-v1"
        one.fail = False
        manager.refresh()
        assert manager.route(MODEL, "k").version_id == "lightgbm-v1"
    messages = [r.getMessage() for r in caplog.records if "routing state" in r.getMessage()]
    assert one.calls == 5
    assert len(messages) == 2, messages
    assert "cannot read" in messages[0] and "again" in messages[1]


def test_a_model_never_read_fails_during_an_outage(manager, reads):  # noqa: F811
    one, _ = reads
    one.fail = True
    with pytest.raises(OperationalError):
        manager.route(MODEL, "k")


def test_routing_follows_the_registry_again_after_the_outage(manager, ab_workspace, reads):  # noqa: F811
    one, _ = reads
    manager.route(MODEL, "k")
    one.fail = True
    manager.refresh()
    assert manager.route(MODEL, "k").version_id == "lightgbm-v1"
    ab_workspace.registry.promote("lightgbm-v2", reason="test", actor="test")
    one.fail = False
    manager.refresh()
    assert manager.route(MODEL, "k").version_id == "lightgbm-v2"


# The service keeps routing off the request path -----------------------------------------------

def service_for(ws, refresh_seconds: float = 5.0) -> PredictionService:
    ws.settings.serve.refresh_seconds = refresh_seconds
    manager = ABTestingManager(workspace=ws, cache_seconds=refresh_seconds)
    return PredictionService(ws.registry, manager, ws.settings.serve)


def test_requests_do_not_read_the_registry_while_the_maintenance_thread_refreshes(
        ab_workspace, reads, clock):  # noqa: F811
    one, many = reads
    service = service_for(ab_workspace)
    service.refresh()  # what the maintenance thread does every refresh_seconds
    for period in range(5):
        clock[0] += 5.0  # a period later: requests arrive just before the next refresh
        for i in range(20):
            assert service.route(MODEL, f"r{period}-{i}").version_id == "lightgbm-v1"
        service.refresh()
    assert one.calls == 0, f"requests read the routing state from the registry {one.calls} times"
    assert many.calls == 6


def test_the_maintenance_thread_picks_up_a_promotion(ab_workspace, reads, clock):  # noqa: F811
    service = service_for(ab_workspace)
    service.refresh()
    assert service.route(MODEL, "r").version_id == "lightgbm-v1"
    ab_workspace.registry.promote("lightgbm-v2", reason="test", actor="test")
    service.refresh()
    assert service.route(MODEL, "r").version_id == "lightgbm-v2"
    assert "lightgbm-v2" in service.cache.loaded(MODEL)


def test_during_an_outage_requests_are_answered_without_reading_the_registry(
        ab_workspace, reads, clock):  # noqa: F811
    one, many = reads
    service = service_for(ab_workspace)
    service.refresh()
    one.fail = many.fail = True
    for period in range(5):
        clock[0] += 5.0
        service.refresh()  # fails: the registry is down
        route = service.route(MODEL, f"r{period}")
        assert route.version_id == "lightgbm-v1"
        assert service.cache.peek(route.version_id) is not None
    assert service.health()["status"] == "unavailable"
    assert one.calls == 0, f"requests read the routing state from the registry {one.calls} times"


# Numbers a float64 cannot hold ------------------------------------------------------------------

def post_raw(api, body: str, path: str = "/predict/lightgbm"):
    return api.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})


@pytest.mark.parametrize("literal, message", [
    ("1" + "0" * 400, "out of range"),  # an integer beyond float64: was a 500
    ("1e400", "finite number"),  # parsed as infinity
    ("NaN", "finite number"),  # Python's JSON parser accepts these
    ("Infinity", "finite number"),
    ("-Infinity", "finite number"),
])
def test_a_number_a_float_cannot_hold_is_a_422_naming_the_feature(api, literal, message):
    row = features()
    row["income"] = "__INCOME__"
    body = json.dumps({"request_id": "huge", "features": row}).replace('"__INCOME__"', literal)
    r = post_raw(api, body)
    assert r.status_code == 422, r.text
    problems = locs(r)
    assert list(problems) == ["body/features/income"]
    assert message in problems["body/features/income"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_feedback_that_is_not_a_finite_number_is_a_422_naming_the_field(api, literal):
    r = post_raw(api, '{"request_id": "x", "label": %s}' % literal, "/feedback")
    assert r.status_code == 422, r.text
    assert "finite number" in locs(r)["body/label"]
