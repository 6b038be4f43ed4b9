"""``ModelPromoter``: the seed's ``promote_if_better(evaluation)`` and ``rollback(model)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrain.promotion.approval import Approver
from retrain.promotion.decisions import decide_all, rollback_model
from retrain.workspace import Workspace

if TYPE_CHECKING:
    from retrain.notify import NotificationService


class ModelPromoter:
    """The seed's promoter: ``promote_if_better(evaluation)`` for every evaluated model,
    with approval (``approver``) and rollback."""

    def __init__(self, improvement_threshold: float | None = None, config=None,
                 workspace: Workspace | None = None, approver: Approver | None = None,
                 notifier: "NotificationService | None" = None):
        self.workspace = workspace or Workspace.open(config)
        self.improvement_threshold = (self.workspace.settings.promotion.min_relative_improvement
                                      if improvement_threshold is None else improvement_threshold)
        self.approver = approver
        self.notifier = notifier

    def promote_if_better(self, evaluation_results: dict[str, Any]) -> dict[str, Any]:
        """Takes ``AutomatedRetrainingPipeline.evaluate_new_models``'s result."""
        decisions = decide_all(self.workspace, evaluation_results.get("models", {}),
                               self.improvement_threshold, self.notifier, self.approver)
        results = {name: d.to_dict() for name, d in decisions.items()}
        promoted = [n for n, r in results.items() if r["decision"] in ("promoted", "bootstrapped")]
        return {
            "summary": {"models_evaluated": len(results), "models_promoted": len(promoted),
                        "models_rejected": sum(r["decision"] == "rejected" for r in results.values()),
                        "promoted": promoted},
            "models": results,
        }

    def rollback(self, model_name: str, to_version: str | None = None, reason: str = "") -> dict:
        return rollback_model(self.workspace, model_name, to_version, reason, notifier=self.notifier)
