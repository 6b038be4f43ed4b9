"""The ``rollback-model`` flow: make an earlier production version production again."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_run

from retrain_prefect.common import notifier, tag_current_run, workspace
from retrain_prefect.events import emit
from retrain.promotion import decisions as promotion


def _run_name() -> str:
    parameters = current_run.parameters
    return f"rollback {parameters['model']} to {parameters.get('to') or 'previous'}"


@flow(name="rollback-model", flow_run_name=_run_name)
def rollback_model(model: str, to: str | None = None, reason: str = "",
                   config: str | None = None) -> dict[str, Any]:
    """Roll ``model`` back to its previous production version (or ``to``) in one transaction;
    audited, notified (with the SMTP password from the Prefect Secret block when one is
    configured), and announced with the event ``retrain.model.rolled-back`` whose payload
    names ``production_version`` (now), ``rolled_back_from`` and ``reason``."""
    ws = workspace(config)
    ws.model_names([model])
    tag_current_run([f"model:{model}"])
    result = promotion.rollback_model(ws, model, to=to, reason=reason, notifier=notifier(ws))
    emit("retrain.model.rolled-back", model, result)
    return result
