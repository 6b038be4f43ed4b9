"""The ``failure-alert`` flow: email people that a run of one of our flows failed or crashed.

    failure-alert
      write-failure-alert -> deliver-notifications

Its deployment ``failure-alert/notify`` (prefect.yaml) is run by the automation "retrain: email
on failed or crashed run" (``retrain_prefect.automations``) for every Failed or Crashed run of
our entry flows, with the flow, run, state and message taken from the state-change event. A
flow's ``on_failure`` hook could not do this for a Crashed run: the process that would run the
hook is the one that died.

The alert is written to the outbox first like every notification (audited; a mail server that
is down keeps it pending until the next delivery: any pipeline run, the next alert, or
``retrain notify --flush``), then delivered. Email only: the webhook hears of the same failure
from the Prefect server itself (the automation "retrain: notify on failed or crashed run"),
which works with no worker running and when the registry database is what failed, so it is not
sent a second time from here. Without email configured the alert goes to the log channel.

This flow is not among the flows the failure automations watch, so its own failure cannot
start another alert.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run as current_run
from prefect.utilities.urls import url_for

from retrain_prefect.common import notifier, workspace
from retrain.reporting import messages

# The webhook channel is the Prefect server's for failures (see above).
SERVER_SIDE_CHANNELS = {"webhook"}


def _run_name() -> str:
    parameters = current_run.parameters
    return f"alert: {parameters['flow_name']} run {parameters['flow_run_name']} {parameters['state'].lower()}"


@task(name="write-failure-alert", retries=2, retry_delay_seconds=5)
def write_failure_alert(flow_name: str, flow_run_name: str, state: str, message: str,
                        flow_run_id: str | None, url: str | None, config: str | None) -> list[int]:
    """Store the alert in the outbox for email (or the log): one row per channel."""
    service = notifier(workspace(config))
    channels = [c for c in service.channels() if c not in SERVER_SIDE_CHANNELS] or ["log"]
    service.channels = lambda: channels  # this message only
    alert = messages.failure(flow_name, flow_run_name, state, message, url, flow_run_id)
    return service.notify(alert, deliver=False)


@task(name="deliver-notifications")
def deliver_notifications(config: str | None) -> dict[str, int]:
    """Deliver what is due in the outbox, oldest first; never raises for a channel that is
    down (what it could not send stays pending)."""
    return notifier(workspace(config)).flush()


@flow(name="failure-alert", flow_run_name=_run_name)
def failure_alert(flow_name: str, flow_run_name: str, state: str, message: str = "",
                  flow_run_id: str | None = None, url: str | None = None,
                  config: str | None = None) -> dict[str, Any]:
    """Tell people that ``flow_name``'s run ``flow_run_name`` ended in ``state`` (Failed or
    Crashed) with ``message``, linking the run's dashboard page (``url``, by default built
    from ``flow_run_id`` and PREFECT_UI_URL); returns the outbox ids and whether they went
    out."""
    ws = workspace(config)  # a configuration error fails here, before any retry
    if url is None and flow_run_id:
        url = url_for("flow-run", obj_id=flow_run_id)  # the dashboard page of that run, if any
    ids = write_failure_alert(flow_name, flow_run_name, state, message, flow_run_id, url, config)
    counts = deliver_notifications(config)
    delivered = notifier(ws).delivered(ids)
    if not delivered:
        get_run_logger().warning(
            "failure alert %s not delivered yet: it stays in the outbox until the next delivery "
            "(any pipeline run, or `retrain notify --flush`)", ids)
    return {"notifications": ids, "delivered": delivered, "outbox": counts}
