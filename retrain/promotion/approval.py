"""Approval of a promotion by a person: the answer, and who must be asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from retrain.evaluation.results import Evaluation
from retrain.workspace import Workspace


@dataclass
class Approval:
    """A person's answer to a pending promotion."""

    approved: bool
    actor: str
    comment: str = ""


# Asked before a promotion when approval is required: gets the evaluation (None for a change
# that was not evaluated) and the reason for promoting, returns the person's answer (the
# Prefect flow pauses for it).
Approver = Callable[[Evaluation | None, str], Approval]


def requires_approval(ws: Workspace, model_name: str) -> bool:
    own = ws.settings.models[model_name].require_approval if model_name in ws.settings.models else None
    return ws.settings.promotion.require_approval if own is None else own
