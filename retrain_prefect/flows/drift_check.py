"""The daily drift check: the drift and volume checks alone (``retrain.pipeline.run_drift_check``).

    drift-check
      check-drift -> check-data-volume

It emits ``retrain.drift.detected`` and ``retrain.volume.threshold-met`` for the models that
need retraining (automations turn those into ``retraining-pipeline`` runs) and publishes each
model's drift table; it changes nothing in the registry.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags
from prefect.runtime import flow_run as current_run

from retrain.pipeline.context import RunContext
from retrain.pipeline.run import run_drift_check
from retrain_prefect import dashboard, events
from retrain_prefect.common import run_tags, step_settings, tag_current_run, workspace
from retrain_prefect.runner import PrefectRunner

PUBLISHERS = {"check-drift": events.checked_drift, "check-data-volume": events.checked_volume}


def _run_name() -> str:
    return f"drift check: {', '.join(current_run.parameters.get('models') or ['all models'])}"


@flow(name="drift-check", log_prints=True, flow_run_name=_run_name)
def drift_check(models: list[str] | None = None, config: str | None = None) -> dict[str, Any]:
    """Check drift and data volume for every model (or ``models``) and announce what needs
    retraining as events."""
    ws = workspace(config)
    context = RunContext.open(ws, models, reason="schedule", announce=True)
    labels = run_tags(context.models, "schedule")
    tag_current_run(labels)
    with tags(*labels), step_settings():
        checks = run_drift_check(ws, runner=PrefectRunner(PUBLISHERS), context=context)
    dashboard.publish_checks(checks, ws)
    return {"drift": {n: c.as_dict() for n, c in checks.drift.items()},
            "volume": {n: c.to_dict() for n, c in checks.volume.items()}}


if __name__ == "__main__":
    drift_check()
