"""The ``rollout-advance`` flow under the Prefect test harness: it advances a due rollout,
rolls a breaching one back, announces both as events and publishes the rollouts table."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import pytest

from retrain.experiments import ABTestingManager, RolloutStrategy
from prefect_events import wait_for_events
from abtest import MODEL, add_version, set_salt, simulate

pytestmark = pytest.mark.slow

T0 = datetime(2026, 4, 1, 9, 0)


@pytest.fixture
def rollout_flow(harness, monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RETRAIN_ABTEST__MIN_OUTCOMES", "50")
    from retrain_prefect import common
    from retrain_prefect.flows import rollout
    common._open_workspace.cache_clear()
    yield rollout
    common._open_workspace.cache_clear()


def start(ws) -> tuple[ABTestingManager, str, str]:
    from retrain.pipeline import run_pipeline
    run_pipeline(ws, [MODEL])
    candidate = add_version(ws)
    manager = ABTestingManager(workspace=ws, cache_seconds=0)
    rollout = manager.create_gradual_rollout(MODEL, candidate, strategy=RolloutStrategy.CANARY,
                                             initial_traffic=0.5, increment=0.25,
                                             increment_interval_hours=24)
    return manager, rollout["rollout_id"], candidate


def run_flow(rollout_flow, ws, now: datetime):
    state = rollout_flow.rollout_advance(config=str(ws.settings.base_dir / "retrain.toml"),
                                         now=now.isoformat(), return_state=True)
    assert state.is_completed(), state
    return state.result(), state.state_details.flow_run_id


def test_a_due_healthy_step_advances_and_is_announced(rollout_flow, client, make_workspace):
    ws = make_workspace("advance")
    manager, rollout_id, candidate = start(ws)
    simulate(manager, {"A": 0.8, "B": 0.8}, 400, np.random.default_rng(3))

    held, _ = run_flow(rollout_flow, ws, T0)  # the clock of the test: long before the step is due
    assert [e["action"] for e in held] == ["held"]

    results, run_id = run_flow(rollout_flow, ws, datetime.utcnow() + timedelta(hours=25))
    assert [(e["rollout_id"], e["action"], e["traffic_percentage"]) for e in results] == [
        (rollout_id, "advanced", 75)]
    assert manager.rollout_status(MODEL)["traffic_percentage"] == 75
    [event] = wait_for_events(client, "retrain.rollout.advanced", run_id, 1)
    assert event.resource.id == f"retrain.model.{MODEL}"
    assert event.payload["version"] == candidate and event.payload["traffic_percentage"] == 75
    from retrain_prefect.flows.rollout import ROLLOUTS_KEY
    artifact = client.read_latest_artifacts(
        artifact_filter=_key_filter(ROLLOUTS_KEY))[0]
    assert rollout_id in str(artifact.data)


def test_a_breach_rolls_the_candidate_back_and_production_stays(rollout_flow, client, make_workspace):
    ws = make_workspace("breach")
    manager, rollout_id, candidate = start(ws)
    production = ws.registry.production_version(MODEL).version_id
    simulate(manager, {"A": 0.85, "B": 0.55}, 1200, np.random.default_rng(5))

    results, run_id = run_flow(rollout_flow, ws, datetime.utcnow())
    assert [(e["action"], e["traffic_percentage"]) for e in results] == [("rolled-back", 0)]
    assert "worse than" in results[0]["reason"]
    assert ws.registry.production_version(MODEL).version_id == production
    assert manager.route(MODEL, "anyone").version_id == production
    [event] = wait_for_events(client, "retrain.rollout.rolled-back", run_id, 1)
    assert event.payload["version"] == candidate and "worse than" in event.payload["reason"]


def _key_filter(key: str):
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
    return ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))


# The dashboard's flows: start-ab-test, end-ab-test, start-rollout, control-rollout ----------

@pytest.fixture
def experiment_flows(rollout_flow):
    from retrain_prefect.flows import experiments
    return experiments


def config_of(ws) -> str:
    return str(ws.settings.base_dir / "retrain.toml")


def test_an_ab_test_from_the_dashboard_flows_promotes_its_winner(experiment_flows, client,
                                                                   make_workspace):
    ws = make_workspace("abflow")
    from retrain.pipeline import run_pipeline
    run_pipeline(ws, [MODEL])
    production, candidate = ws.registry.production_version(MODEL).version_id, add_version(ws)

    test = experiment_flows.start_ab_test(MODEL, candidate, traffic_split=0.5, config=config_of(ws))
    assert (test["version_a"], test["version_b"]) == (production, candidate)
    set_salt(ws, test["test_id"], "fixed-salt-1")
    manager = ABTestingManager(workspace=ws, cache_seconds=0)
    simulate(manager, {"A": 0.70, "B": 0.80}, 4000, np.random.default_rng(1))

    [status] = experiment_flows.ab_test_status(MODEL, config=config_of(ws))
    assert (status["status"], status["winner"]) == ("significant", "B")
    state = experiment_flows.end_ab_test(test["test_id"], config=config_of(ws), return_state=True)
    result = state.result()
    assert (result["winner"], result["promoted"]) == ("B", candidate)
    assert ws.registry.production_version(MODEL).version_id == candidate
    run_id = state.state_details.flow_run_id
    [ended] = wait_for_events(client, "retrain.abtest.ended", run_id, 1)
    assert ended.payload["promoted"] == candidate and ended.payload["p_value"] <= 0.05
    [promoted] = wait_for_events(client, "retrain.model.promoted", run_id, 1)
    assert promoted.payload["version_id"] == candidate
    artifact = client.read_latest_artifacts(artifact_filter=_key_filter("retrain-abtest-lightgbm"))[0]
    assert test["test_id"] in str(artifact.data) and "SIGNIFICANT" in str(artifact.data)


def test_a_rollout_from_the_dashboard_flows_pauses_and_aborts(experiment_flows, client,
                                                              make_workspace):
    ws = make_workspace("rolloutflow")
    from retrain.pipeline import run_pipeline
    run_pipeline(ws, [MODEL])
    production, candidate = ws.registry.production_version(MODEL).version_id, add_version(ws)

    rollout = experiment_flows.start_rollout(MODEL, candidate, strategy="gradual", steps=4,
                                             config=config_of(ws))
    assert [s["traffic_percentage"] for s in rollout["schedule"]] == [25, 50, 75, 100]
    paused = experiment_flows.control_rollout(MODEL, "pause", reason="holiday", config=config_of(ws))
    assert paused["action"] == "paused"
    state = experiment_flows.control_rollout(MODEL, "abort", reason="not now", config=config_of(ws),
                                             return_state=True)
    assert state.result()["action"] == "stopped"
    assert ws.registry.production_version(MODEL).version_id == production
    [stopped] = wait_for_events(client, "retrain.rollout.stopped", state.state_details.flow_run_id, 1)
    assert stopped.payload["version"] == candidate and "not now" in stopped.payload["reason"]
    assert [e.action for e in ws.registry.history(MODEL)][-3:] == [
        "rollout-started", "rollout-paused", "rollout-aborted"]
