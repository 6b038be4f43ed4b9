"""The ``rollout-advance`` flow under the Prefect test harness: it advances a due rollout,
rolls a breaching one back, announces both as events and publishes the rollouts table."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import pytest

from retrain.experiments import ABTestingManager, RolloutStrategy
from test_experiments import MODEL, add_version
from test_experiments_status import simulate
from test_flows import wait_for_events

pytestmark = pytest.mark.slow

T0 = datetime(2026, 4, 1, 9, 0)


@pytest.fixture
def rollout_flow(harness, monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RETRAIN_ABTEST__MIN_OUTCOMES", "50")
    from flows import common
    from flows import rollout
    common._open_workspace.cache_clear()
    yield rollout
    common._open_workspace.cache_clear()


@pytest.fixture
def client(harness):
    from prefect import get_client
    with get_client(sync_client=True) as c:
        yield c


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
    from flows.rollout import ROLLOUTS_KEY
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
