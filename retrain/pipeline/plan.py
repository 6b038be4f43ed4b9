"""Which models a run retrains, and why."""

from __future__ import annotations

from dataclasses import dataclass

from retrain.pipeline.context import RunContext
from retrain.triggers.report import TriggerReport


@dataclass(frozen=True)
class RetrainPlan:
    """Per model, why it is retrained (``bootstrap``, ``drift``, ``volume``, ``performance``,
    ``forced``); no reasons means it is skipped."""

    reasons: dict[str, tuple[str, ...]]

    @property
    def to_train(self) -> list[str]:
        return [name for name, why in self.reasons.items() if why]

    def trigger(self, name: str) -> str | None:
        """The reasons as the run document shows them ("drift, volume"), None if skipped."""
        return ", ".join(self.reasons.get(name, ())) or None


def plan_retraining(context: RunContext, triggers: TriggerReport) -> RetrainPlan:
    """A model without a production version is bootstrapped; any fired trigger retrains;
    ``force`` retrains the rest."""
    reasons = {}
    for name in context.models:
        if name in context.failed:  # its part of the run stopped at a check
            reasons[name] = ()
            continue
        why = ["bootstrap"] if context.production.get(name) is None else []
        why += triggers.fired(name)
        if not why and context.force:
            why.append("forced")
        reasons[name] = tuple(why)
    return RetrainPlan(reasons)
