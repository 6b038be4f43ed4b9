"""Reading what a flow run told the Prefect server: its events (which arrive asynchronously)."""

from __future__ import annotations

import time
from uuid import UUID


def wait_for_events(client, name: str, flow_run_id: UUID, count: int, timeout: float = 60):
    """Events called ``name`` emitted from flow run ``flow_run_id`` (events reach the server
    asynchronously, so poll)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
    event_filter = EventFilter(event=EventNameFilter(name=[name]),
                               related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    deadline = time.monotonic() + timeout
    while True:
        events = client.read_events(filter=event_filter, limit=50).events
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def subflow_run(client, parent_id: UUID, flow_name: str) -> UUID:
    """The id of the run of ``flow_name`` nested under flow run ``parent_id``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    names = {f.id: f.name for f in client.read_flows()}
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    [run] = [r for r in runs if names[r.flow_id] == flow_name]
    return run.id
