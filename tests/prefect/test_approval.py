"""Manual approval: the deploy-models run pauses; the CLI, resume_flow_run or a timeout answer."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.slow


def _paused_runs(client):
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))


def _wait_for_pause(client, thread, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _paused_runs(client)
        if runs:
            return runs[0]
        assert thread.is_alive(), "the pipeline ended without pausing"
        time.sleep(0.5)
    raise AssertionError("no flow run paused for approval")


def _approval_artifact(client, flow_run_id):
    """The newest ``approval-lightgbm`` artifact of the run."""
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                ArtifactFilterKey)
    from prefect.client.schemas.sorting import ArtifactSort
    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=["approval-lightgbm"]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])), sort=ArtifactSort.CREATED_DESC)
    assert found, "no approval artifact on the pipeline run"
    return found[0]


@pytest.fixture
def approval_setup(harness, make_workspace, drift_month, monkeypatch):
    """A bootstrapped workspace with a drifted month, approval required from now on."""
    from prefect import get_client

    from retrain_prefect.flows import pipeline as flows
    from retrain.pipeline import run_pipeline

    ws = make_workspace()
    config = str(ws.settings.base_dir / "retrain.toml")
    run_pipeline(ws, models=["lightgbm"])
    drift_month(ws)
    monkeypatch.setenv("RETRAIN_PROMOTION__REQUIRE_APPROVAL", "true")
    monkeypatch.setenv("RETRAIN_APPROVAL_POLL_SECONDS", "1")
    result: dict = {}

    def run():
        result["doc"] = flows.retraining_pipeline(config=config, models=["lightgbm"],
                                                  reason="drift").to_dict()

    thread = threading.Thread(target=run, daemon=True)
    with get_client(sync_client=True) as client:
        yield ws, config, client, thread, result


def test_approve_from_the_command_line(approval_setup, capsys):
    from retrain_prefect.cli import main

    ws, config, client, thread, result = approval_setup
    thread.start()
    paused = _wait_for_pause(client, thread)
    assert paused.name and ws.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    parent = client.read_flow_runs()  # the pipeline run is the paused run's parent
    pipeline_run = next(r for r in parent if r.id != paused.id and r.state.is_running()
                        and r.flow_id != paused.flow_id)
    # The pipeline run's own page says that it waits, for what, and how to answer.
    waiting = _approval_artifact(client, pipeline_run.id)
    assert waiting.data.startswith("# Waiting for approval: lightgbm-v2")
    assert f"retrain approve {pipeline_run.id}" in waiting.data and "| roc_auc (primary) |" in waiting.data
    assert main(["approve", str(pipeline_run.id), "--comment", "checked the drift report",
                 "--actor", "alice"]) == 0
    assert "approved" in capsys.readouterr().out
    thread.join(120)
    m = result["doc"]["models"]["lightgbm"]
    assert m["decision"] == "promoted"
    assert ws.registry.production_version("lightgbm").version_id == "lightgbm-v2"
    events = [(e.action, e.actor, e.reason) for e in ws.registry.history("lightgbm")]
    assert ("approved", "alice", "checked the drift report") in events
    assert events[-1][:2] == ("promoted", "alice")
    answered = _approval_artifact(client, pipeline_run.id)
    assert answered.data.startswith("# lightgbm-v2: approved") and "alice" in answered.data


def test_reject_with_resume_flow_run(approval_setup):
    from prefect.flow_runs import resume_flow_run

    ws, config, client, thread, result = approval_setup
    thread.start()
    paused = _wait_for_pause(client, thread)
    resume_flow_run(paused.id, run_input={"approve": False, "approver": "bob",
                                          "comment": "wait for the quarter close"})
    thread.join(120)
    m = result["doc"]["models"]["lightgbm"]
    assert m["decision"] == "rejected" and "rejected by bob: wait for the quarter close" in m["reason"]
    assert ws.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    assert ws.registry.get_version("lightgbm-v2").status == "rejected"
    actions = [(e.action, e.actor) for e in ws.registry.history("lightgbm")]
    assert ("approval-rejected", "bob") in actions


def test_no_answer_in_time_is_a_rejection(approval_setup, monkeypatch):
    ws, config, client, thread, result = approval_setup
    monkeypatch.setenv("RETRAIN_PROMOTION__APPROVAL_TIMEOUT_HOURS", "0.0005")  # about 2 s
    thread.start()
    thread.join(120)
    m = result["doc"]["models"]["lightgbm"]
    assert m["decision"] == "rejected" and "rejected by timeout" in m["reason"]
    assert ws.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    assert ("approval-rejected", "timeout") in [(e.action, e.actor) for e in ws.registry.history("lightgbm")]
