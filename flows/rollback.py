"""The ``rollback-model`` flow: make an earlier production version production again."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.events import emit_event

from retrain import promotion
from retrain.workspace import Workspace


@flow(name="rollback-model")
def rollback_model(model: str, to: str | None = None, reason: str = "",
                   config: str | None = None) -> dict[str, Any]:
    """Roll ``model`` back to its previous production version (or ``to``); audited, notified,
    and announced with the event ``retrain.model.rolled-back``."""
    ws = Workspace.open(config)
    ws.model_names([model])
    result = promotion.rollback_model(ws, model, to=to, reason=reason)
    emit_event(event="retrain.model.rolled-back",
               resource={"prefect.resource.id": f"retrain.model.{model}",
                         "prefect.resource.name": model},
               payload=result)
    return result
