"""Twelve models retrained in one run of the ``retraining-pipeline`` flow, each fitted as a
Prefect task ``train · <model>`` on a local Dask cluster of two worker processes started for
the ``retrain-models`` subflow (``[orchestration] task_runner = "dask"``), and registered by
the subflow's own process: every candidate registered and decided, fitted in the workers'
processes, and the registry's invariants as after a run that fitted them one by one."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from many_models import many_models_workspace, model_names
from prefect_events import subflow_run, wait_for_events
from retrain.notify.service import NotificationService
from retrain.workspace import Workspace

pytestmark = pytest.mark.slow

COUNT = 12
DASK = 'task_runner = "dask"\ndask_workers = 2\ndask_threads_per_worker = 1'


@pytest.fixture
def pipeline(harness, monkeypatch):
    monkeypatch.setenv("RETRAIN_ACTOR", "parallel-flow-test")
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    from retrain_prefect import common
    from retrain_prefect.flows import pipeline as flows
    common._open_workspace.cache_clear()
    yield flows
    common._open_workspace.cache_clear()


def test_twelve_models_are_fitted_on_a_local_dask_cluster_and_registered_here(
        pipeline, client, tmp_path):
    config = many_models_workspace(tmp_path / "ws", COUNT, DASK, trees=15)
    names = model_names(COUNT)
    state = pipeline.retraining_pipeline(config=str(config), return_state=True)
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id
    document = state.result()

    # Every candidate registered and decided (a first version: bootstrapped).
    assert sorted(document.models) == sorted(names)
    for name, outcome in document.models.items():
        assert outcome.decision == "bootstrapped", (name, outcome)
        assert outcome.candidate_version == f"{name}-v1"

    # Each fit was a task of the retrain-models subflow, named after its model.
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    retrain_run = subflow_run(client, run_id, "retrain-models")
    tasks = client.read_task_runs(task_run_filter=TaskRunFilter(
        flow_run_id=TaskRunFilterFlowRunId(any_=[retrain_run])))
    trains = {t.name: t for t in tasks if t.name.startswith("train · ")}
    assert set(trains) == {f"train · {n}" for n in names}
    assert all(t.state_type.value == "COMPLETED" for t in trains.values())

    # ... run in the two Dask workers' processes, not in this one: the registered events
    # (sent by the subflow once it registered them) say where each was fitted.
    events = wait_for_events(client, "retrain.model.registered", retrain_run, COUNT)
    assert sorted(e.resource.id for e in events) == sorted(f"retrain.model.{n}" for n in names)
    fitted = {e.resource.id: e.payload["fitted_by"] for e in events}
    pids = {f["pid"] for f in fitted.values()}
    workers = {f["worker"] for f in fitted.values()}
    assert os.getpid() not in pids, fitted
    assert all(w and w.startswith("tcp://") for w in workers), fitted
    assert len(pids) == len(workers) == 2, fitted  # both workers took fits
    assert all(f["threads"] >= 1 for f in fitted.values())

    # The registry's invariants: one production version per model, the audit trail of each,
    # and the outbox holding each switch's notices once, the pending one before the other.
    registry = Workspace.open(config).registry
    for name in names:
        versions = registry.versions(name)
        assert [(v.version_id, v.status) for v in versions] == [(f"{name}-v1", "production")]
        trail = [(e.action, e.version_id) for e in registry.history(name)]
        assert trail == [("registered", f"{name}-v1"), ("evaluated", f"{name}-v1"),
                         ("promoted", f"{name}-v1")], trail
        assert {e.actor for e in registry.history(name)} == {"parallel-flow-test"}
    rows = NotificationService(workspace=Workspace.open(config)).outbox.messages(limit=1000)
    assert Counter(r.kind for r in rows if r.model_name is None) == {"retraining_summary": 1}
    for name in names:
        notices = sorted((r.id, r.kind) for r in rows if r.model_name == name)
        assert [kind for _, kind in notices] == ["pending_promotion", "promotion"], notices
    assert {r.status for r in rows} <= {"sent", "pending"}, [(r.kind, r.status) for r in rows]


@pytest.mark.parametrize("orchestration", [
    'task_runner = "process"\nmax_workers = 2', 'task_runner = "thread"\nmax_workers = 2'],
    ids=["process", "thread"])
def test_a_model_whose_fit_fails_in_a_task_leaves_the_others_registered(
        pipeline, client, tmp_path, orchestration):
    config = many_models_workspace(tmp_path / "ws", 3, orchestration, refusing=True)
    state = pipeline.retraining_pipeline(config=str(config), return_state=True)
    assert state.is_completed(), state
    document = state.result()
    assert document.models["refuses"].decision == "failed"
    assert "refuses to learn" in document.models["refuses"].reason
    for name in model_names(3):
        assert document.models[name].decision == "bootstrapped", document.models[name]
    retrain_run = subflow_run(client, state.state_details.flow_run_id, "retrain-models")
    events = wait_for_events(client, "retrain.model.registered", retrain_run, 3)
    pids = {e.payload["fitted_by"]["pid"] for e in events}
    if "process" in orchestration:  # Prefect's process pool: spawned worker processes
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}
