"""The promotion rule: is a candidate enough better than production to replace it?"""

from __future__ import annotations

from typing import Any

from retrain.config import PromotionConfig


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
