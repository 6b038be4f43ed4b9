"""The ``rollout-advance`` flow: move every active canary or gradual rollout on by one check.

Runs hourly (``rollout-advance/hourly``, cron from ``[rollout] cron``). For each active
rollout the library (``retrain.experiments.advance_rollouts``) checks the guardrail, rolls the
candidate back to 0% on a breach, advances a step that is due, or promotes the candidate at
100%. The flow announces each outcome as an event and publishes the rollouts as a table. It
also checks the active A/B tests, so their numbers on the dashboard are at most an hour old
(``retrain_prefect.flows.experiments.check_ab_tests``).

Events (resource ``retrain.model.<name>``): ``retrain.rollout.advanced``,
``retrain.rollout.rolled-back`` (production unchanged: only the candidate's traffic is gone),
``retrain.rollout.stopped`` / ``retrain.rollout.failed``, and ``retrain.model.promoted`` when
a rollout completes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from retrain_prefect.common import notifier, workspace
from retrain_prefect.events import emit
from retrain_prefect.dashboard import artifact_key
from retrain_prefect.flows.experiments import check_ab_tests
from retrain.experiments import ABTestingManager, advance_rollouts
from retrain.experiments.analysis import jsonable as _jsonable
from retrain.reporting.tables import markdown_table

ROLLOUTS_KEY = "retrain-rollouts"
EVENTS = {"advanced": "retrain.rollout.advanced", "rolled-back": "retrain.rollout.rolled-back",
          "stopped": "retrain.rollout.stopped", "failed": "retrain.rollout.failed",
          "completed": "retrain.model.promoted"}
COLUMNS = ("model", "rollout_id", "version", "production_version", "action", "step", "steps",
           "traffic_percentage", "next_step_at", "reason")


def _parse_now(now: str | None) -> datetime | None:
    """``now`` as naive UTC (the registry's clock); None means the current time."""
    if not now:
        return None
    moment = datetime.fromisoformat(now)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


@flow(name="rollout-advance", log_prints=True)
def rollout_advance(config: str | None = None, now: str | None = None) -> list[dict[str, Any]]:
    """Check and advance every active rollout once; ``now`` (ISO time) replays a moment."""
    logger = get_run_logger()
    ws = workspace(config)
    alerts = notifier(ws)
    results = [_jsonable(e) for e in advance_rollouts(ws, now=_parse_now(now), notifier=alerts)]
    for entry in results:
        logger.info("%s %s: %s (%s%% to %s) %s", entry["model"], entry["rollout_id"], entry["action"],
                    entry["traffic_percentage"], entry["version"], entry["reason"])
        event = EVENTS.get(entry["action"])
        if event == "retrain.model.promoted":
            emit(event, entry["model"], {**entry, "decision": "promoted",
                                         "version_id": entry["version"],
                                         "production_version_before": entry["production_version"]})
        elif event:
            emit(event, entry["model"], entry)
    if not results:
        logger.info("no active rollouts")
    publish(results)
    check_ab_tests(ABTestingManager(workspace=ws, notifier=alerts))
    return results


def publish(results: list[dict[str, Any]]) -> None:
    """A table of this check's rollouts, and per model the rollout's state in markdown."""
    rows = [{c: entry.get(c) for c in COLUMNS} for entry in results]
    create_table_artifact(key=ROLLOUTS_KEY, table=rows or [{c: None for c in COLUMNS}],
                          description="Active rollouts after this check")
    for entry in results:
        lines = [f"# {entry['model']}: rollout {entry['rollout_id']} {entry['action'].upper()}", "",
                 markdown_table(["candidate", "production", "step", "traffic to candidate",
                                 "next step at"],
                                [[entry["version"], entry["production_version"],
                                  f"{entry['step']} of {entry['steps']}",
                                  f"{entry['traffic_percentage']}%", entry["next_step_at"] or "-"]]),
                 "", f"Why: {entry['reason']}" if entry["reason"] else ""]
        create_markdown_artifact(key=artifact_key("rollout", entry["model"]),
                                 markdown="\n".join(lines),
                                 description=f"{entry['model']}: rollout state after the hourly check")


if __name__ == "__main__":
    rollout_advance()
