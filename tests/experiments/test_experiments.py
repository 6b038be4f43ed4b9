"""A/B tests: sticky routing, the prediction log and feedback, creating and validating tests."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from retrain.errors import ConfigError, DataValidationError, RegistryError
from retrain.experiments import ABTestingManager, Route, bucket
from retrain.pipeline import run_pipeline
from retrain.registry.tables import Experiment, Feedback, PredictionLog
from retrain.workspace import Workspace
from abtest import MODEL, add_version


def ids(n: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


# Routing ------------------------------------------------------------------------------------

def test_without_an_experiment_everything_goes_to_production(manager):
    assert manager.route(MODEL, "user-1") == Route("lightgbm-v1", "production", None)
    assert manager.route_prediction(MODEL, "user-2") == ("lightgbm-v1", "production")


def test_a_model_without_production_cannot_be_routed(manager):
    with pytest.raises(RegistryError, match="'random_forest' has no production version"):
        manager.route("random_forest", "user-1")


def test_routing_is_sticky_across_managers_and_refreshes(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5,
                                  duration_days=7)
    keys = ids(2000)
    first = [manager.route(MODEL, k) for k in keys]
    assert {r.experiment_id for r in first} == {test["test_id"]}
    assert {(r.variant, r.version_id) for r in first} == {("A", "lightgbm-v1"), ("B", "lightgbm-v2")}
    other = ABTestingManager(workspace=Workspace.open(ab_workspace.settings), cache_seconds=0)
    assert [other.route(MODEL, k) for k in keys] == first
    manager.refresh()
    assert [manager.route(MODEL, k) for k in keys] == first
    # The variant is the documented function of the stored salt and the key.
    with ab_workspace.registry.reading() as s:
        salt = s.get(Experiment, test["test_id"]).salt
    assert [("B" if bucket(salt, k) < 0.5 else "A") for k in keys] == [r.variant for r in first]


def test_at_100k_ids_the_split_is_within_one_point(manager):
    manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.3)
    routed_b = sum(manager.route(MODEL, k).variant == "B" for k in ids(100_000, "req"))
    assert abs(routed_b / 100_000 - 0.3) < 0.01


def test_integer_ids_route_like_their_string_and_other_keys_are_refused(manager):
    manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2")
    assert [manager.route(MODEL, i) for i in range(200)] == \
        [manager.route(MODEL, str(i)) for i in range(200)]
    with pytest.raises(DataValidationError, match="routing key"):
        manager.route(MODEL, 1.5)


def test_a_new_test_a_promotion_and_a_rollback_are_seen_after_refresh(manager, ab_workspace):
    cached = ABTestingManager(workspace=ab_workspace, cache_seconds=3600)
    assert cached.route(MODEL, "u").variant == "production"
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3", traffic_split=0.5)
    assert cached.route(MODEL, "u").variant == "production"  # still cached
    cached.refresh()
    assert {cached.route(MODEL, k).variant for k in ids(50)} == {"A", "B"}
    manager.end_test(test["test_id"], promote_winner=False)
    ab_workspace.registry.promote("lightgbm-v2", reason="test")
    assert cached.route(MODEL, "u").experiment_id == test["test_id"]  # still cached
    cached.refresh()
    assert cached.route(MODEL, "u") == Route("lightgbm-v2", "production", None)
    ab_workspace.registry.rollback(MODEL)
    cached.refresh()
    assert cached.route(MODEL, "u") == Route("lightgbm-v1", "production", None)


def test_a_zero_cache_reads_the_registry_every_time(manager, ab_workspace):
    live = ABTestingManager(workspace=ab_workspace, cache_seconds=0)
    assert live.route(MODEL, "u").variant == "production"
    manager.create_ab_test(MODEL, "production", 3)
    assert live.route(MODEL, "u").experiment_id is not None


# Creating tests: validation ------------------------------------------------------------------

def test_create_returns_the_test_and_audits_it(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "v1", "2", traffic_split=0.25, duration_days=7,
                                  now=datetime(2026, 3, 1))
    assert test["test_id"] == "ab-lightgbm-1"
    assert (test["version_a"], test["version_b"], test["traffic_split"], test["status"]) == (
        "lightgbm-v1", "lightgbm-v2", 0.25, "running")
    assert test["ends_at"] == datetime(2026, 3, 8)
    [event] = [e for e in ab_workspace.registry.history(MODEL) if e.action == "ab-test-created"]
    assert event.version_id == "lightgbm-v2"
    assert event.details["experiment_id"] == "ab-lightgbm-1"
    assert event.details["traffic_split"] == 0.25


@pytest.mark.parametrize("kwargs, error, message", [
    ({"version_a": "lightgbm-v1", "version_b": "lightgbm-v1"}, RegistryError, "two different"),
    ({"version_a": "production", "version_b": "lightgbm-v9"}, RegistryError, "lightgbm-v9"),
    ({"version_a": "lightgbm-v1", "version_b": "random_forest-v1"}, RegistryError, "random_forest-v1"),
    ({"version_a": "lightgbm-v1", "version_b": "v2", "traffic_split": 1.0}, ConfigError, "traffic_split"),
    ({"version_a": "lightgbm-v1", "version_b": "v2", "traffic_split": 0}, ConfigError, "traffic_split"),
    ({"version_a": "lightgbm-v1", "version_b": "v2", "duration_days": -1}, ConfigError, "duration_days"),
    ({"version_a": "lightgbm-v1", "version_b": "v2", "metric": "roc_auc"}, ConfigError, "metric"),
])
def test_bad_tests_are_refused_and_nothing_is_written(manager, ab_workspace, kwargs, error, message):
    with pytest.raises(error, match=message):
        manager.create_ab_test(MODEL, **kwargs)
    assert manager.list_tests() == []
    assert not [e for e in ab_workspace.registry.history(MODEL) if e.action.startswith("ab-")]


def test_a_version_of_another_model_is_refused(manager, ab_workspace):
    run_pipeline(ab_workspace, ["random_forest"])
    with pytest.raises(RegistryError, match="belongs to model 'random_forest'"):
        manager.create_ab_test(MODEL, "lightgbm-v1", "random_forest-v1")


def test_unknown_model_and_unknown_test_are_named(manager):
    with pytest.raises(RegistryError, match="no registered model 'nope'"):
        manager.create_ab_test("nope", "production", "v2")
    with pytest.raises(RegistryError, match="no experiment 'ab-x-1'"):
        manager.check_test_status("ab-x-1")
    with pytest.raises(RegistryError, match="no experiment 'ab-x-1'"):
        manager.end_test("ab-x-1")


def test_a_second_active_test_for_a_model_is_refused(manager):
    first = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2")
    with pytest.raises(RegistryError, match=f"already has an active A/B test {first['test_id']}"):
        manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3")
    manager.end_test(first["test_id"], promote_winner=False)
    second = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3")
    assert second["test_id"] == "ab-lightgbm-2"


def test_the_database_allows_one_active_experiment_per_model(manager, ab_workspace):
    manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2")
    insert = text("INSERT INTO experiment (id, kind, model_name, version_a, version_b, traffic_b, "
                  "salt, status, metric, schedule, step, started_at, result, created_by) VALUES "
                  "(:id, 'ab_test', 'lightgbm', 'lightgbm-v1', 'lightgbm-v3', 0.5, 's', :status, "
                  "'accuracy', '[]', 0, :at, '{}', 'x')")
    with pytest.raises(IntegrityError):
        with ab_workspace.registry.transaction() as s:
            s.connection().execute(insert, {"id": "sneaky", "status": "paused",
                                            "at": datetime(2026, 1, 1)})
    with ab_workspace.registry.transaction() as s:  # an ended one is fine
        s.connection().execute(insert, {"id": "old", "status": "stopped", "at": datetime(2026, 1, 1)})


# Prediction log and feedback -----------------------------------------------------------------

def test_predictions_and_feedback_are_stored_in_bulk(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2")
    at = datetime(2026, 3, 1, 12, 0)
    rows = []
    for key in ids(10):
        route = manager.route(MODEL, key)
        rows.append({"request_id": key, "model_name": MODEL, "version_id": route.version_id,
                     "variant": route.variant, "experiment_id": route.experiment_id,
                     "prediction": 1, "probability": 0.8, "at": at})
    manager.log_predictions(rows)
    manager.log_feedback([{"request_id": k, "label": 1} for k in ids(5)])
    manager.record_outcome("user-9", reward=2.5, model_name=MODEL)
    with ab_workspace.registry.reading() as s:
        logged = s.exec(select(PredictionLog)).all()
        feedback = s.exec(select(Feedback)).all()
    assert len(logged) == 10 and {p.experiment_id for p in logged} == {test["test_id"]}
    assert {(p.prediction, p.probability, p.at) for p in logged} == {(1.0, 0.8, at)}
    assert sorted(f.request_id for f in feedback) == sorted(ids(5) + ["user-9"])
    assert [(f.label, f.reward, f.model_name) for f in feedback if f.request_id == "user-9"] == [
        (None, 2.5, MODEL)]


@pytest.mark.parametrize("row, key", [
    ({"model_name": MODEL, "version_id": "v", "variant": "A", "prediction": 1}, "request_id"),
    ({"request_id": "r", "model_name": MODEL, "version_id": "v", "variant": "C", "prediction": 1}, "variant"),
    ({"request_id": "r", "model_name": MODEL, "version_id": "v", "variant": "A", "prediction": "yes"}, "prediction"),
    ({"request_id": "r", "model_name": MODEL, "version_id": "v", "variant": "A", "prediction": 1,
      "probability": 1.5}, "probability"),
    ({"request_id": "r", "model_name": MODEL, "version_id": "v", "variant": "A", "prediction": 1,
      "colour": "red"}, "colour"),
])
def test_a_bad_prediction_row_is_named_and_nothing_is_logged(manager, ab_workspace, row, key):
    good = {"request_id": "ok", "model_name": MODEL, "version_id": "v", "variant": "A", "prediction": 0}
    with pytest.raises(DataValidationError, match=f"column '{key}': row 1"):
        manager.log_predictions([good, row])
    with ab_workspace.registry.reading() as s:
        assert s.exec(select(PredictionLog)).all() == []


def test_feedback_needs_a_label_or_a_reward(manager):
    with pytest.raises(DataValidationError, match="label or a reward"):
        manager.record_outcome("r-1")
    with pytest.raises(DataValidationError, match="'label': row 0: expected a finite number"):
        manager.log_feedback([{"request_id": "r", "label": float("nan")}])


def test_the_pipeline_does_not_move_production_under_a_live_experiment(manager, ab_workspace,
                                                                       drift_month):
    """A candidate good enough to promote waits while the model has an A/B test running; the
    test keeps comparing the versions it started with."""
    test = manager.create_ab_test(MODEL, "production", "lightgbm-v2", traffic_split=0.5)
    drift_month(ab_workspace)
    document = run_pipeline(ab_workspace, [MODEL])
    decision = document.models[MODEL]
    assert decision.decision == "awaiting-experiment", decision
    assert test["test_id"] in decision.reason and "retrain promote" in decision.reason
    registry = ab_workspace.registry
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    candidate = registry.get_version(decision.candidate_version)
    assert candidate.status == "candidate"
    assert registry.history(MODEL)[-1].action == "awaiting-experiment"
    manager.refresh()
    assert {manager.route(MODEL, k).version_id for k in ids(200)} == {"lightgbm-v1", "lightgbm-v2"}


def test_starting_a_test_is_announced(manager, ab_workspace):
    from retrain.registry.tables import Notification
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.3,
                                  actor="alice")
    with ab_workspace.registry.reading() as s:
        [row] = [n for n in s.exec(select(Notification)) if n.kind == "ab_test_started"]
    assert test["test_id"] in row.subject and "lightgbm-v1 vs lightgbm-v2" in row.subject
    assert "alice started" in row.body_text and "70%" in row.body_text and "30%" in row.body_text
    assert row.payload["traffic_split"] == 0.3
