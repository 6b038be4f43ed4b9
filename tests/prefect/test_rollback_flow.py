"""Rolling back under Prefect: the ``rollback-model`` flow, and ``deploy-models`` after a failed
smoke check. Both must leave the previous version in production, say why in the audit log,
tell people (a real SMTP server on loopback) and emit ``retrain.model.rolled-back``, which is
read back from the test harness's Prefect server.
"""

from __future__ import annotations

import json
import os

import pytest

from retrain.notify.outbox import Outbox
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace
from prefect_events import subflow_run, wait_for_events
from smoke_samples import tamper_smoke_sample
from smtp_server import SmtpServer, free_port

pytestmark = pytest.mark.slow

MODEL = "lightgbm"
RECIPIENTS = ["ml-team@example.com"]


@pytest.fixture
def mail(make_workspace, monkeypatch):
    """(workspace, its config path, a free SMTP port the workspace mails to)."""
    from retrain_prefect import common
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"
    port = free_port()
    # The flows open the workspace from the file, so the mail settings go there.
    config.write_text(config.read_text() + f'\n[notifications]\nsmtp_host = "127.0.0.1"\n'
                      f'smtp_port = {port}\nemail_recipients = {json.dumps(RECIPIENTS)}\n'
                      'retry_backoff_seconds = 0\n')
    common._open_workspace.cache_clear()
    yield Workspace.open(config), config, port
    common._open_workspace.cache_clear()


def two_production_versions(ws: Workspace, drift_month) -> None:
    """lightgbm-v1, then lightgbm-v2 trained on a drifted month and promoted over it."""
    run_pipeline(ws, models=[MODEL])
    drift_month(ws)
    run_pipeline(ws, models=[MODEL])
    assert ws.registry.production_version(MODEL).version_id == f"{MODEL}-v2"


def test_rollback_flow_restores_the_previous_version(harness, client, mail, drift_month):
    from retrain_prefect.flows.rollback import rollback_model

    ws, config, port = mail
    reason = "complaints from the risk team"
    with SmtpServer(port) as server:
        two_production_versions(ws, drift_month)
        before = len(server.received)
        state = rollback_model(model=MODEL, reason=reason, config=str(config), return_state=True)
    assert state.is_completed(), state
    expected = {"model": MODEL, "production_version": f"{MODEL}-v1",
                "rolled_back_from": f"{MODEL}-v2", "reason": reason, "outcome": "switched"}
    assert state.result() == expected

    registry = Workspace.open(config).registry
    assert registry.production_version(MODEL).version_id == f"{MODEL}-v1"
    assert registry.get_version(f"{MODEL}-v2").status == "archived"
    last = registry.history(MODEL)[-1]
    assert (last.action, last.version_id, last.reason) == ("rolled-back", f"{MODEL}-v1", reason)

    outbox = Outbox(registry, ws.settings.notifications).messages(limit=1)
    [row] = outbox
    assert (row.kind, row.channel, row.status, row.model_name) == ("rollback", "email", "sent", MODEL)
    assert row.payload == {"version_id": f"{MODEL}-v1", "rolled_back_from": f"{MODEL}-v2",
                           "reason": reason}
    # Announced before and after, like every production change.
    notice, received = server.received[before:]
    assert notice.subject == f"[retrain] {MODEL}: {MODEL}-v1 will replace {MODEL}-v2 in production"
    assert received.subject == f"[retrain] {MODEL}: rolled back to {MODEL}-v1"
    assert reason in notice.part("text/plain") and reason in received.part("text/plain")

    run_id = state.state_details.flow_run_id
    run = client.read_flow_run(run_id)
    assert run.name == f"rollback {MODEL} to previous" and f"model:{MODEL}" in run.tags
    [event] = wait_for_events(client, "retrain.model.rolled-back", run_id, 1)
    assert event.resource.id == f"retrain.model.{MODEL}" and event.resource.name == MODEL
    assert event.payload == expected


def test_rollback_with_nothing_to_go_back_to_fails_and_changes_nothing(harness, client, mail):
    from retrain_prefect.flows.rollback import rollback_model
    from retrain.errors import RegistryError

    ws, config, port = mail
    with SmtpServer(port) as server:
        run_pipeline(ws, models=[MODEL])  # lightgbm-v1 only
        before = (len(ws.registry.history(MODEL)), len(server.received))
        state = rollback_model(model=MODEL, reason="oops", config=str(config), return_state=True)
        assert state.is_failed()
        with pytest.raises(RegistryError, match="no earlier production version"):
            state.result()
        after = (len(ws.registry.history(MODEL)), len(server.received))
    assert after == before
    assert ws.registry.production_version(MODEL).version_id == f"{MODEL}-v1"
    run_id = state.state_details.flow_run_id
    assert not wait_for_events(client, "retrain.model.rolled-back", run_id, 1, timeout=2)


def test_deploy_models_after_a_failed_smoke_check_rolls_back_and_says_so(harness, client, mail,
                                                                        drift_month):
    """The pipeline's deploy-models step, run by the Prefect runner with the pipeline's
    publishers inside a flow, on a candidate whose smoke check fails."""
    from prefect import flow

    from retrain.evaluation.evaluate import evaluate_candidates
    from retrain.pipeline import steps
    from retrain.pipeline.context import RunContext
    from retrain.training import load_training_data
    from retrain.training.candidates import train_candidates
    from retrain_prefect.common import notifier, workspace
    from retrain_prefect.flows.pipeline import PUBLISHERS
    from retrain_prefect.runner import PrefectRunner

    @flow(name="deploy-one")
    def deploy_one(evaluations, config: str):
        ws = workspace(config)
        context = RunContext.open(ws, [MODEL], notifier=notifier(ws))
        return PrefectRunner(PUBLISHERS)(steps.deploy_models, context, evaluations)

    ws, config, port = mail
    with SmtpServer(port) as server:
        run_pipeline(ws, models=[MODEL])
        drift_month(ws)
        data = load_training_data(ws)
        evaluations = evaluate_candidates(ws, train_candidates(ws, [MODEL], data, "drift"), data)
        evaluations[MODEL] = tamper_smoke_sample(ws, evaluations[MODEL])
        before = len(server.received)
        state = deploy_one(evaluations, str(config), return_state=True)
    assert state.is_completed(), state
    decision = state.result()[MODEL]
    assert decision.decision == "rolled-back"
    assert decision.reason.startswith("smoke check after promotion failed: ")

    registry = Workspace.open(config).registry
    assert registry.production_version(MODEL).version_id == f"{MODEL}-v1"
    assert registry.get_version(f"{MODEL}-v2").status == "archived"
    last = registry.history(MODEL)[-1]
    assert (last.action, last.version_id, last.reason) == ("rolled-back", f"{MODEL}-v1", decision.reason)
    assert [r.message["X-Retrain-Kind"] for r in server.received[before:]] == [
        "pending_promotion", "pending_promotion", "rollback"]
    [row] = Outbox(registry, ws.settings.notifications).messages(limit=1)
    assert (row.kind, row.status, row.payload["rolled_back_from"]) == ("rollback", "sent", f"{MODEL}-v2")

    deploy_run = subflow_run(client, state.state_details.flow_run_id, "deploy-models")
    [event] = wait_for_events(client, "retrain.model.rolled-back", deploy_run, 1)
    assert event.resource.id == f"retrain.model.{MODEL}" and event.resource.name == MODEL
    # From the candidate that failed its check back to the version it was compared with.
    assert event.payload["decision"] == "rolled-back"
    assert event.payload["version_id"] == f"{MODEL}-v2"
    assert event.payload["production_version_before"] == f"{MODEL}-v1"
    # The keys rollback-model's event has too.
    assert (event.payload["production_version"], event.payload["rolled_back_from"]) == (
        f"{MODEL}-v1", f"{MODEL}-v2")
    assert event.payload["reason"] == decision.reason
    assert "smoke rows" in event.payload["reason"]
