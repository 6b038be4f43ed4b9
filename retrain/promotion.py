"""Promotion decisions: promote a candidate only when it is enough better than production."""

from __future__ import annotations

import logging
from typing import Any

from retrain.config import PromotionConfig
from retrain.errors import RegistryError
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def decide(evaluation: dict[str, Any], policy: PromotionConfig,
           min_relative_improvement: float | None = None) -> tuple[str, str]:
    """``(decision, reason)`` for one evaluation: bootstrapped, promoted or rejected.

    Promoted only when all hold: the relative improvement reaches the threshold; with
    ``require_significance``, the paired interval of the difference lies above zero; and no
    guardrail metric is worse than production beyond its tolerance.
    """
    threshold = policy.min_relative_improvement if min_relative_improvement is None \
        else min_relative_improvement
    metric = evaluation["metric"]
    if evaluation.get("production_version") is None:
        return "bootstrapped", "no production version: the first version becomes production"
    improvement = evaluation["relative_improvement"]
    cand = evaluation["metrics"]["candidate"][metric]
    prod = evaluation["metrics"]["production"][metric]
    comparison = (f"{metric} {cand:.4f} vs {prod:.4f} in production: {improvement:+.2%} "
                  f"(needs {threshold:+.2%})")
    if improvement < threshold:
        return "rejected", comparison
    interval = evaluation.get("interval")
    if policy.require_significance and interval and interval["lower"] <= 0:
        return "rejected", (f"{comparison}, but not significant: the {interval['confidence']:.0%} "
                            f"{interval['method']} interval of the difference "
                            f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}] does not "
                            "exclude no improvement")
    breaches = [f"{m} {g['candidate']:.4f} vs {g['production']:.4f} "
                f"({g['relative_worsening']:+.1%} worse, tolerance {g['tolerance']:.1%})"
                for m, g in (evaluation.get("guardrails") or {}).items() if not g["ok"]]
    if breaches:
        return "rejected", f"{comparison}, but guardrail breached: {'; '.join(breaches)}"
    if interval and policy.require_significance:
        comparison += (f", significant ({interval['confidence']:.0%} interval "
                       f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}])")
    return "promoted", comparison


def apply_decision(ws: Workspace, evaluation: dict[str, Any],
                   min_relative_improvement: float | None = None,
                   actor: str | None = None) -> dict[str, Any]:
    """Decide and record it in the registry (promotion is one transaction)."""
    decision, reason = decide(evaluation, ws.settings.promotion, min_relative_improvement)
    if min_relative_improvement is None:
        min_relative_improvement = ws.settings.promotion.min_relative_improvement
    version_id = evaluation["candidate_version"]
    details = {"metric": evaluation["metric"],
               "relative_improvement": evaluation["relative_improvement"],
               "threshold": min_relative_improvement, "metrics": evaluation["metrics"],
               "interval": evaluation.get("interval"), "guardrails": evaluation.get("guardrails")}
    if decision == "rejected":
        ws.registry.reject(version_id, reason=reason, actor=actor, details=details)
    else:
        # Only switch if production is still the version this candidate was compared with.
        ws.registry.promote(version_id, reason=reason, actor=actor, details=details,
                            expected_production=evaluation.get("production_version"))
    log.info("%s %s: %s", decision, version_id, reason)
    return {"model": evaluation["model"], "version_id": version_id, "decision": decision,
            "reason": reason, "production_version_before": evaluation.get("production_version"),
            "relative_improvement": evaluation["relative_improvement"]}


class ModelPromoter:
    """The seed's promoter: ``promote_if_better(evaluation)`` for every evaluated model."""

    def __init__(self, improvement_threshold: float | None = None, config=None,
                 workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.open(config)
        self.improvement_threshold = (self.workspace.settings.promotion.min_relative_improvement
                                      if improvement_threshold is None else improvement_threshold)

    def promote_if_better(self, evaluation_results: dict[str, Any]) -> dict[str, Any]:
        """Takes ``AutomatedRetrainingPipeline.evaluate_new_models``'s result."""
        results: dict[str, Any] = {}
        for name, evaluation in evaluation_results.get("models", {}).items():
            try:
                results[name] = apply_decision(self.workspace, evaluation, self.improvement_threshold)
            except RegistryError as exc:
                results[name] = {"model": name, "version_id": evaluation.get("candidate_version"),
                                 "decision": "failed", "reason": str(exc)}
        promoted = [n for n, r in results.items() if r["decision"] in ("promoted", "bootstrapped")]
        return {
            "summary": {"models_evaluated": len(results), "models_promoted": len(promoted),
                        "models_rejected": sum(r["decision"] == "rejected" for r in results.values()),
                        "promoted": promoted},
            "models": results,
        }

    def rollback(self, model_name: str, to_version: str | None = None, reason: str = "") -> dict:
        version = self.workspace.registry.rollback(model_name, to=to_version, reason=reason)
        return {"model": model_name, "production_version": version.version_id}
