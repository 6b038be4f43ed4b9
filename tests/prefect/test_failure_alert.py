"""The failure alert: a Failed or Crashed run of one of our flows is emailed.

Without a server: prefect.yaml deploys ``failure-alert``; the automation's trigger picks the
runs of our entry flows that failed or crashed and never the alert's own runs; the server
renders the flow's parameters from the state-change event. Under the Prefect test harness:
the ``failure-alert`` flow writes the alert to the outbox and a real SMTP server on loopback
receives it; and the automation, applied to the harness's server, turns real Failed and
Crashed runs into ``failure-alert`` runs with the right parameters, but not a failed alert.
tests/test_e2e_server.py runs the whole path on a real server with a worker.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from uuid import uuid4

import pytest

from prefect_server import PROJECT_DIR, WebhookReceiver
from retrain.notify.outbox import Outbox
from retrain.workspace import Workspace
from smtp_server import SmtpServer, free_port

RECIPIENTS = ["ml-team@example.com"]


def failure_event(flow: str, state: str = "Failed", message: str | None = "boom",
                  run_name: str = "brave-fox", run_id=None):
    """A state-change event as the Prefect server emits it for a flow run."""
    from prefect.server.events.schemas.events import ReceivedEvent

    run_id = run_id or uuid4()
    resource = {"prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.name": run_name, "prefect.state-name": state,
                "prefect.state-type": state.upper(), "prefect.run-count": "1"}
    if message is not None:
        resource["prefect.state-message"] = message
    return ReceivedEvent(
        occurred=datetime.now(timezone.utc), event=f"prefect.flow-run.{state}", resource=resource,
        related=[{"prefect.resource.id": f"prefect.flow.{uuid4()}", "prefect.resource.role": "flow",
                  "prefect.resource.name": flow},
                 {"prefect.resource.id": "prefect.tag.retrain", "prefect.resource.role": "tag"}],
        id=uuid4())


# Without a server ---------------------------------------------------------------------------

def test_prefect_yaml_deploys_the_failure_alert_flow():
    import yaml

    from retrain_prefect.automations import FAILURE_ALERT_DEPLOYMENT, FAILURE_ALERT_FLOW
    from retrain_prefect.flows.failure_alert import failure_alert

    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    flow_name, name = FAILURE_ALERT_DEPLOYMENT.split("/")
    [deployment] = [d for d in spec["deployments"] if d["entrypoint"] == "flows/failure_alert.py:failure_alert"]
    assert failure_alert.name == flow_name == FAILURE_ALERT_FLOW and deployment["name"] == name
    assert deployment["work_pool"]["name"] == "retrain-pool"
    assert not deployment.get("schedules") and not deployment.get("triggers")


@pytest.mark.parametrize("flow, state, fires", [
    ("drift-check", "Failed", True),
    ("retraining-pipeline", "Crashed", True),
    ("rollback-model", "Failed", True),
    ("failure-alert", "Failed", False),  # an alert that fails does not alert about itself
    ("failure-alert", "Crashed", False),
    ("drift-check", "Completed", False),
    ("deploy-models", "Failed", False),  # a subflow: its parent's failure is the one reported
])
def test_the_failure_trigger_watches_failed_and_crashed_runs_of_our_entry_flows(flow, state, fires):
    from prefect.server.events.schemas.automations import EventTrigger

    from retrain_prefect.automations import failure_alert_automation, failure_automation

    for automation in (failure_alert_automation(uuid4()), failure_automation(uuid4())):
        # The trigger as the server reads it, with the server's own matching.
        trigger = EventTrigger.model_validate(automation.trigger.model_dump(mode="json"))
        assert trigger.covers(failure_event(flow, state)) is fires, automation.name


def render(parameters: dict, event) -> dict:
    """``parameters`` rendered as the server's RunDeployment action renders them."""
    import copy

    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    parameters = copy.deepcopy(parameters)
    RunDeployment._upgrade_v1_templates(parameters)
    # Like RunDeployment.render_parameters: no _register_filters_if_needed() (so no ui_url).
    return hydrate(parameters, HydrationContext(render_jinja=True, raise_on_error=True,
                                                jinja_context={"event": event}))


def test_the_alert_parameters_come_from_the_event():
    from retrain_prefect.automations import FAILURE_ALERT_PARAMETERS

    run_id = uuid4()
    event = failure_event("drift-check", "Crashed", "No heartbeat for 600s", "quiet-owl", run_id)
    assert render(FAILURE_ALERT_PARAMETERS, event) == {
        "flow_name": "drift-check", "flow_run_name": "quiet-owl", "flow_run_id": str(run_id),
        "state": "Crashed", "message": "No heartbeat for 600s"}
    assert render(FAILURE_ALERT_PARAMETERS, failure_event("drift-check", message=None))["message"] == ""
    assert len(render(FAILURE_ALERT_PARAMETERS, failure_event("drift-check", message="x" * 9000))
               ["message"]) == 4000


# The flow ------------------------------------------------------------------------------------

@pytest.fixture
def mail(make_workspace, monkeypatch):
    """(config path, SMTP port, webhook receiver): a workspace that mails to that port and
    has that webhook configured too."""
    import os

    from retrain_prefect import common
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    ws = make_workspace(months=1, rows_per_month=200, trees=5)
    config = ws.settings.base_dir / "retrain.toml"
    port = free_port()
    with WebhookReceiver() as hook:
        config.write_text(config.read_text() + f'\n[notifications]\nsmtp_host = "127.0.0.1"\n'
                          f'smtp_port = {port}\nemail_recipients = {json.dumps(RECIPIENTS)}\n'
                          f'webhook_url = "{hook.url}"\nretry_backoff_seconds = 0\n')
        common._open_workspace.cache_clear()
        yield config, port, hook
    common._open_workspace.cache_clear()


def outbox(config) -> list:
    ws = Workspace.open(config)
    return Outbox(ws.registry, ws.settings.notifications).messages()


@pytest.mark.slow
def test_the_flow_emails_the_alert_through_the_outbox(harness, mail):
    from retrain_prefect.flows.failure_alert import failure_alert

    config, port, hook = mail
    run_id = str(uuid4())
    with SmtpServer(port) as server:
        state = failure_alert(flow_name="drift-check", flow_run_name="brave-fox", state="Failed",
                              message="ConfigError: unknown model 'no_such_model'",
                              flow_run_id=run_id, url="http://prefect.example/runs/flow-run/1",
                              config=str(config), return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert result["delivered"] is True

    [mail_received] = server.received
    assert mail_received.subject == "[retrain] drift-check run brave-fox failed"
    assert mail_received.recipients == RECIPIENTS
    assert mail_received.message["X-Retrain-Kind"] == "failure"
    text = mail_received.part("text/plain")
    assert "The drift-check run brave-fox ended in state Failed." in text
    assert "unknown model 'no_such_model'" in text and run_id in text
    assert "http://prefect.example/runs/flow-run/1" in text
    assert "drift-check run brave-fox" in mail_received.part("text/html")

    # Email only: the webhook hears of failures from the Prefect server (deployments/automations.py).
    [row] = outbox(config)
    assert row.id in result["notifications"]
    assert (row.kind, row.channel, row.status) == ("failure", "email", "sent")
    assert row.payload["flow"] == "drift-check" and row.payload["flow_run_id"] == run_id
    assert hook.requests == []


@pytest.mark.slow
def test_with_the_mail_server_down_the_alert_waits_in_the_outbox(harness, mail):
    from retrain_prefect.flows.failure_alert import failure_alert

    config, port, _ = mail
    run_id = str(uuid4())
    state = failure_alert(flow_name="retraining-pipeline", flow_run_name="all models (schedule)",
                          state="Crashed", message="", flow_run_id=run_id, config=str(config),
                          return_state=True)
    assert state.is_completed(), state  # the alert run itself does not fail
    assert state.result()["delivered"] is False
    [row] = outbox(config)
    assert (row.status, row.subject) == ("pending", "[retrain] retraining-pipeline run all models (schedule) crashed")
    assert "(the run left no message)" in row.body_text and row.last_error
    # No url given: the link to the run's dashboard page is built from its id.
    assert row.payload["url"].endswith(f"/runs/flow-run/{run_id}") and row.payload["url"] in row.body_text

    with SmtpServer(port) as server:  # the next delivery sends it
        from retrain.notify import NotificationService
        NotificationService(workspace=Workspace.open(config)).flush(now=True)
    assert [r.subject for r in server.received] == [row.subject]


# The automation on the harness's server -------------------------------------------------------

@pytest.mark.slow
def test_the_automation_turns_failed_and_crashed_runs_into_alert_runs(harness, tmp_path):
    """Real state changes on the harness's server fire the automation: a failed drift-check
    run and a crashed one each get a failure-alert run (created, not run: no worker here) with
    their details; a failed failure-alert run gets none."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.states import Crashed, Running

    from retrain_prefect.automations import EMAIL_AUTOMATION, _upsert, failure_alert_automation
    from retrain_prefect.flows.drift_check import drift_check
    from retrain_prefect.flows.failure_alert import failure_alert

    missing = str(tmp_path / "missing" / "retrain.toml")  # fails each flow at once
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("failure-alert")
        deployment_id = client.create_deployment(flow_id, f"notify-{uuid4().hex[:8]}",
                                                 entrypoint="flows/failure_alert.py:failure_alert")
        automation = failure_alert_automation(deployment_id)
        assert _upsert(client, automation) in ("created", "replaced")
        assert _upsert(client, automation) == "unchanged"  # idempotent
        try:
            alert_failed = failure_alert(flow_name="drift-check", flow_run_name="x", state="Failed",
                                         config=missing, return_state=True)
            assert alert_failed.is_failed()
            failed = drift_check(config=missing, return_state=True)
            assert failed.is_failed()
            crashed = client.create_flow_run(drift_check, state=Running())
            client.set_flow_run_state(crashed.id, Crashed(message="the worker's machine is gone"),
                                      force=True)

            def alerts() -> dict[str, dict]:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[deployment_id])))
                return {r.parameters["flow_run_id"]: r.parameters for r in runs}

            wanted = {str(failed.state_details.flow_run_id), str(crashed.id)}
            deadline = time.monotonic() + 60
            while not wanted <= set(found := alerts()) and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            for existing in client.read_automations_by_name(EMAIL_AUTOMATION):
                client.delete_automation(existing.id)
            client.delete_deployment(deployment_id)
    assert wanted <= set(found), found
    failed_run = found[str(failed.state_details.flow_run_id)]
    assert failed_run["flow_name"] == "drift-check" and failed_run["state"] == "Failed"
    assert "no configuration file" in failed_run["message"]
    assert failed_run["flow_run_name"].startswith("drift check")
    crashed_run = found[str(crashed.id)]
    assert (crashed_run["flow_name"], crashed_run["flow_run_name"], crashed_run["state"],
            crashed_run["message"]) == ("drift-check", crashed.name, "Crashed", "the worker's machine is gone")
    # The failed alert ran before both of them; it started nothing.
    assert str(alert_failed.state_details.flow_run_id) not in found
