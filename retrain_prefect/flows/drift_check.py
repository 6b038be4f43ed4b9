"""The daily drift check: the drift and volume checks alone.

    drift-check
      check-drift -> check-data-volume

It emits ``retrain.drift.detected`` and ``retrain.volume.threshold-met`` for the models that
need retraining (automations turn those into ``retraining-pipeline`` runs) and publishes each
model's drift table; it changes nothing in the registry.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_run

from retrain_prefect import dashboard
from retrain_prefect.common import step_settings, tag_current_run, workspace
from retrain_prefect.flows.pipeline import check_data_volume, check_drift


def _run_name() -> str:
    return f"drift check: {', '.join(current_run.parameters.get('models') or ['all models'])}"


@flow(name="drift-check", log_prints=True, flow_run_name=_run_name)
def drift_check(models: list[str] | None = None, config: str | None = None) -> dict[str, Any]:
    """Check drift and data volume for every model (or ``models``) and announce what needs
    retraining as events."""
    names = workspace(config).model_names(models)
    tag_current_run([f"model:{n}" for n in names])
    with step_settings():
        drift = check_drift(names, config, announce=True)
        volume = check_data_volume(names, config, announce=True)
    dashboard.publish_checks(drift, volume)
    return {"drift": drift, "volume": volume}


if __name__ == "__main__":
    drift_check()
