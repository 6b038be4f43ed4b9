"""The promotion rule: is a candidate enough better than production to replace it?"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from retrain.config import PromotionConfig
from retrain.evaluation.results import Evaluation


def decide(evaluation: Evaluation | Mapping[str, Any], policy: PromotionConfig,
           min_relative_improvement: float | None = None
           ) -> tuple[Literal["bootstrapped", "promoted", "rejected"], str]:
    """``(decision, reason)`` for one evaluation: bootstrapped, promoted or rejected.

    Promoted only when all hold: the relative improvement reaches the threshold; with
    ``require_significance``, the paired interval of the difference lies above zero; and no
    guardrail metric is worse than production beyond its tolerance.
    """
    ev = Evaluation.from_dict(evaluation)
    threshold = policy.min_relative_improvement if min_relative_improvement is None \
        else min_relative_improvement
    if ev.production_version is None:
        return "bootstrapped", "no production version: the first version becomes production"
    improvement = ev.relative_improvement
    comparison = (f"{ev.metric} {ev.candidate_metric:.4f} vs {ev.production_metric:.4f} in "
                  f"production: {improvement:+.2%}{ev.basis_words()} (needs {threshold:+.2%})")
    if improvement < threshold:
        return "rejected", comparison
    interval = ev.interval
    if policy.require_significance and interval is not None and interval.lower <= 0:
        return "rejected", (f"{comparison}, but not significant: the {interval.confidence:.0%} "
                            f"{interval.method} interval of the difference "
                            f"[{interval.lower:+.4f}, {interval.upper:+.4f}] does not "
                            "exclude no improvement")
    breaches = [f"{m} {g.candidate:.4f} vs {g.production:.4f} "
                f"({g.relative_worsening:+.1%} worse, tolerance {g.tolerance:.1%})"
                for m, g in ev.guardrails.items() if not g.ok]
    if breaches:
        return "rejected", f"{comparison}, but guardrail breached: {'; '.join(breaches)}"
    if interval is not None and policy.require_significance:
        comparison += (f", significant ({interval.confidence:.0%} interval "
                       f"[{interval.lower:+.4f}, {interval.upper:+.4f}])")
    return "promoted", comparison
