"""The automations of retrain, in code, and an idempotent way to apply them.

    python -m deployments.automations [--webhook-url URL] [--config retrain.toml]

- **retrain on drift** / **retrain on volume**: a ``retrain.drift.detected`` or
  ``retrain.volume.threshold-met`` event for resource ``retrain.model.<name>`` runs the
  ``retraining-pipeline/monthly`` deployment for that model, with reason ``drift`` or
  ``volume``. prefect.yaml declares the same two triggers on that deployment (``prefect
  deploy`` creates them); both ways give one automation of each name, owned by the
  deployment, however often and in whichever order they are applied.
- **retrain: mark runs without heartbeats crashed**: a running run of one of the entry flows
  (``ENTRY_FLOWS``: every deployed flow but ``failure-alert``) whose heartbeats stop (its
  machine died with its worker, so nobody saw the process end) is marked Crashed after
  ``--crashed-after`` seconds (default 600, three of Prefect's 180-second heartbeats). This
  is what the parent flows' heartbeats are for.
- **retrain: email on failed or crashed run**: a run of an entry flow that ends Failed or
  Crashed runs the
  ``failure-alert/notify`` deployment (``retrain_prefect.flows.failure_alert``) with the flow, run, run
  id, state and message of that run, taken from the state-change event. The flow writes the
  alert to the outbox and emails it to ``[notifications] email_recipients``. It runs in a
  process of its own, so it also reports a run whose process died (Crashed), which an
  ``on_failure`` hook cannot. Left out (and says so) when that deployment does not exist.
- **retrain: notify on failed or crashed run**: the same runs call the
  ``retrain-failure-webhook`` block (a Prefect ``Webhook``) with a JSON description of the
  run, straight from the Prefect server: this works with no worker running, and when the
  registry database is what failed. Its URL comes from ``--webhook-url`` or ``[notifications]
  webhook_url``; without one this automation is left out (and says so). The failure-alert
  flow does not send the webhook again.

``failure-alert`` is not among the watched flows: an alert that fails cannot start another.

Applying runs against the server in ``PREFECT_API_URL``, after ``prefect deploy``.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from prefect import get_client
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.events.actions import CallWebhook, ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from retrain.config import find_config_path, load_config
from retrain.errors import ConfigError
from retrain_prefect.deployments import (ENTRY_FLOWS, FAILURE_ALERT_DEPLOYMENT, FAILURE_ALERT_FLOW,
                                         PIPELINE_DEPLOYMENT, pipeline_triggers)

WEBHOOK_BLOCK = "retrain-failure-webhook"
FAILURE_AUTOMATION = "retrain: notify on failed or crashed run"  # the webhook
EMAIL_AUTOMATION = "retrain: email on failed or crashed run"
CRASH_AUTOMATION = "retrain: mark runs without heartbeats crashed"
CRASHED_AFTER = timedelta(minutes=10)

# The webhook's body: JSON, rendered by the server with the run that failed; "text" makes it
# readable by Slack-compatible receivers (like [notifications] webhook_url).
FAILURE_PAYLOAD = """{
  "text": {{ ("retrain: " ~ flow.name ~ " run " ~ flow_run.name ~ " " ~ flow_run.state.name ~ ": "
             ~ (flow_run.state.message or "no message")) | tojson }},
  "event": "retrain.run.{{ flow_run.state.name | lower }}",
  "flow": "{{ flow.name }}",
  "flow_run": "{{ flow_run.name }}",
  "flow_run_id": "{{ flow_run.id }}",
  "state": "{{ flow_run.state.name }}",
  "message": {{ flow_run.state.message | tojson }},
  "parameters": {{ flow_run.parameters | tojson }},
  "tags": {{ flow_run.tags | tojson }},
  "url": {{ flow_run | ui_url | tojson }}
}"""


# The failure-alert flow's parameters, rendered by the server from the Failed or Crashed
# state-change event: its resource is the flow run, with the state's name and message; the
# flow is a related resource. (The server renders run-deployment parameters without its
# ``ui_url`` filter, so the flow builds the run's dashboard link itself.)
FAILURE_ALERT_PARAMETERS = {
    "flow_name": "{{ event.resource_in_role['flow'].name }}",
    "flow_run_name": "{{ event.resource.name }}",
    "flow_run_id": "{{ event.resource.id | replace('prefect.flow-run.', '') }}",
    "state": "{{ event.resource['prefect.state-name'] }}",
    "message": "{{ (event.resource.get('prefect.state-message') or '')[:4000] }}",
}


def failed_or_crashed_run() -> EventTrigger:
    """Each run of one of ENTRY_FLOWS that ends Failed or Crashed, once."""
    return EventTrigger(
        expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": ENTRY_FLOWS},
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )


def _on_failed_or_crashed_run(name: str, does: str, action) -> AutomationCore:
    return AutomationCore(name=name, trigger=failed_or_crashed_run(), actions=[action],
                          description=f"A Failed or Crashed run of {', '.join(ENTRY_FLOWS)} {does}.")


def failure_automation(webhook_block_id) -> AutomationCore:
    return _on_failed_or_crashed_run(
        FAILURE_AUTOMATION, f"calls the {WEBHOOK_BLOCK} webhook",
        CallWebhook(block_document_id=webhook_block_id, payload=FAILURE_PAYLOAD))


def failure_alert_automation(failure_alert_deployment_id) -> AutomationCore:
    return _on_failed_or_crashed_run(
        EMAIL_AUTOMATION, f"runs {FAILURE_ALERT_DEPLOYMENT}, which emails the failure alert",
        RunDeployment(source="selected", deployment_id=failure_alert_deployment_id,
                      parameters=FAILURE_ALERT_PARAMETERS))


def crash_detection(crashed_after: timedelta = CRASHED_AFTER) -> AutomationCore:
    """Prefect's recipe for runs whose process vanished, for our entry flows."""
    return AutomationCore(
        name=CRASH_AUTOMATION,
        description=f"A {', '.join(ENTRY_FLOWS)} run that stops sending heartbeats without "
                    "finishing is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": ENTRY_FLOWS},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=crashed_after,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"No heartbeat for {crashed_after.total_seconds():.0f}s: "
                                            "the process running this flow is gone.")],
    )


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    # The API does not return owner_resource, so it cannot be compared.
    data = automation.model_dump(mode="json", include={"name", "description", "enabled", "trigger",
                                                       "actions"})
    data["trigger"].pop("id", None)
    for key in ("after", "expect", "for_each"):  # sets: their order is arbitrary
        if isinstance(data["trigger"].get(key), list):
            data["trigger"][key] = sorted(data["trigger"][key])
    return data


def _upsert(client: SyncPrefectClient, automation: AutomationCore) -> str:
    """Make ``automation`` the only one of its name: unchanged when it already is, else
    replaced (the API cannot change an automation's owner, so it is deleted and created)."""
    existing = client.read_automations_by_name(automation.name)
    if len(existing) == 1 and _comparable(existing[0]) == _comparable(automation):
        return "unchanged"
    for old in existing:
        client.delete_automation(old.id)
    client.create_automation(automation)
    return "replaced" if existing else "created"


def webhook_url_from_config(config: str | None = None) -> str | None:
    try:
        return load_config(find_config_path(config)).notifications.webhook_url
    except ConfigError:
        return None


def apply(webhook_url: str | None = None, client: SyncPrefectClient | None = None,
          crashed_after: timedelta = CRASHED_AFTER) -> dict[str, Any]:
    """Create or update the automations; returns what was done, by automation name.

    Needs the deployments (``prefect deploy --all`` first).
    """
    if client is None:
        with get_client(sync_client=True) as own_client:
            return apply(webhook_url, own_client, crashed_after)
    done: dict[str, Any] = {}
    deployment = client.read_deployment_by_name(PIPELINE_DEPLOYMENT)
    for trigger in pipeline_triggers():
        trigger.set_deployment_id(deployment.id)
        done[trigger.name] = _upsert(client, trigger.as_automation())
    done[CRASH_AUTOMATION] = _upsert(client, crash_detection(crashed_after))
    try:
        alert = client.read_deployment_by_name(FAILURE_ALERT_DEPLOYMENT)
    except ObjectNotFound:  # not deployed (yet)
        done[EMAIL_AUTOMATION] = (f"skipped: no {FAILURE_ALERT_DEPLOYMENT} deployment (`prefect "
                                  "deploy --all` creates it)")
    else:
        done[EMAIL_AUTOMATION] = _upsert(client, failure_alert_automation(alert.id))
    if webhook_url:
        block_id = Webhook(url=webhook_url, method="POST",
                           headers={"Content-Type": "application/json"}).save(WEBHOOK_BLOCK, overwrite=True)
        done[FAILURE_AUTOMATION] = _upsert(client, failure_automation(block_id))
    else:
        done[FAILURE_AUTOMATION] = ("skipped: no webhook URL (pass --webhook-url or set "
                                    "[notifications] webhook_url)")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.automations",
                                     description="Create or update retrain's automations.")
    parser.add_argument("--webhook-url", help="where failure notifications are POSTed "
                                              "(default: [notifications] webhook_url)")
    parser.add_argument("--config", help="retrain.toml (default: RETRAIN_CONFIG or ./retrain.toml)")
    parser.add_argument("--crashed-after", type=float, default=CRASHED_AFTER.total_seconds(),
                        metavar="SECONDS", help="mark a run Crashed after this long without a "
                                                "heartbeat (default: %(default).0f)")
    args = parser.parse_args(argv)
    done = apply(args.webhook_url or webhook_url_from_config(args.config),
                 crashed_after=timedelta(seconds=args.crashed_after))
    for name, what in done.items():
        print(f"{name}: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
