"""The pipeline's decision about each candidate, and rollback: both through the production
switch (``retrain.promotion.switch``)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from retrain.errors import RegistryError
from retrain.evaluation.results import Evaluation
from retrain.experiments.store import get_experiment
from retrain.notify.service import NotificationService
from retrain.promotion.approval import Approver, requires_approval
from retrain.promotion.results import Decision
from retrain.promotion.rule import decide
from retrain.promotion.switch import ProductionChange, SwitchResult, change_production
from retrain.registry.rules import ActiveExperimentError
from retrain.registry.tables import Experiment
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def apply_decision(ws: Workspace, evaluation: Evaluation | Mapping[str, Any],
                   min_relative_improvement: float | None = None, actor: str | None = None,
                   notifier: NotificationService | None = None,
                   approver: Approver | None = None) -> Decision:
    """Decide by the promotion rule; reject, or change production through the switch (which
    asks for approval where required, announces, switches, smoke-checks and announces).

    While the model has a live A/B test or rollout, production stays: the decision is
    ``awaiting-experiment``, also when the experiment started while approval was pending.
    """
    ev = Evaluation.from_dict(evaluation)
    notifier = notifier or NotificationService(workspace=ws)
    policy = ws.settings.promotion
    threshold = policy.min_relative_improvement if min_relative_improvement is None \
        else min_relative_improvement
    verdict, reason = decide(ev, policy, threshold)
    if ev.features_added:  # named wherever the decision is: notices, audit, run document
        reason += (f"; new features {', '.join(ev.features_added)} (clients of the prediction "
                   "service must send them)")
    details = {"metric": ev.metric, "relative_improvement": ev.relative_improvement,
               "improvement_basis": ev.improvement_basis,
               "metric_difference": ev.metric_difference,
               "threshold": threshold, "metrics": ev.metrics.to_dict(),
               "interval": None if ev.interval is None else ev.interval.to_dict(),
               "guardrails": {m: g.to_dict() for m, g in ev.guardrails.items()}}
    decision = Decision(model=ev.model, version_id=ev.candidate_version, decision=verdict,
                        reason=reason, production_version_before=ev.production_version,
                        relative_improvement=ev.relative_improvement)
    if verdict == "rejected":
        return _reject(ws, ev, decision, details, actor, notifier)
    improvement = ev.relative_improvement
    change = ProductionChange(
        ev.model, ev.candidate_version, "promotion", reason, actor=actor,
        expected_production=ev.production_version,
        requires_approval=requires_approval(ws, ev.model), smoke_sample=ev.smoke_sample,
        evaluation=ev, candidate_metrics=ev.metrics.candidate,
        production_metrics=ev.metrics.production,
        improvement_percent=None if improvement is None else 100 * improvement, details=details)
    try:
        result = change_production(ws, change, notifier, approver)
    except ActiveExperimentError as exc:
        return _await_experiment(ws, get_experiment(ws.registry, exc.experiment_id), decision,
                                 details, actor)
    if result.outcome == "awaiting-approval":
        return decision.model_copy(update={
            "decision": "awaiting-approval",
            "reason": f"{reason}; approval required (promote by hand with "
                      f"`retrain promote {ev.candidate_version}`)"})
    if result.outcome == "approval-rejected":
        return _reject(ws, ev, decision.model_copy(update={"reason": f"{reason}; {result.reason}"}),
                       details, actor, notifier)
    decided = decision.model_copy(update={"approved_by": result.approved_by,
                                          "notice_delivered": result.notice_delivered})
    if result.outcome == "undone":
        return decided.model_copy(update={"decision": "rolled-back", "reason": result.reason})
    return decided


def decide_all(ws: Workspace, evaluations: Mapping[str, Evaluation | Mapping[str, Any]],
               min_relative_improvement: float | None = None,
               notifier: NotificationService | None = None,
               approver: Approver | None = None) -> dict[str, Decision]:
    """``apply_decision`` for each model; a model whose switch the registry refuses (e.g.
    production changed since the evaluation) is ``failed`` with the reason, and the others
    are decided as usual."""
    notifier = notifier or NotificationService(workspace=ws)
    decisions = {}
    for name, evaluation in evaluations.items():
        ev = Evaluation.from_dict(evaluation)
        try:
            decisions[name] = apply_decision(ws, ev, min_relative_improvement,
                                             notifier=notifier, approver=approver)
        except RegistryError as exc:
            log.error("decision for %s failed: %s", ev.candidate_version, exc)
            decisions[name] = Decision(model=name, version_id=ev.candidate_version,
                                       decision="failed", reason=str(exc),
                                       production_version_before=ev.production_version,
                                       relative_improvement=ev.relative_improvement)
    return decisions


def _reject(ws: Workspace, ev: Evaluation, decision: Decision, details: dict[str, Any],
            actor: str | None, notifier: NotificationService) -> Decision:
    ws.registry.reject(ev.candidate_version, reason=decision.reason, actor=actor, details=details)
    notifier.send_rejection(ev.model, ev.candidate_version, decision.reason,
                            ev.metrics.candidate, ev.metrics.production)
    log.info("rejected %s: %s", ev.candidate_version, decision.reason)
    return decision.model_copy(update={"decision": "rejected"})


def _await_experiment(ws: Workspace, experiment: Experiment, decision: Decision,
                      details: dict[str, Any], actor: str | None) -> Decision:
    """Leave production alone while ``experiment`` is live: audited, decision
    ``awaiting-experiment`` with how to go on."""
    model, version_id = decision.model, decision.version_id
    kind = "A/B test" if experiment.kind == "ab_test" else "rollout"
    end = (f"`retrain ab end {experiment.id}`" if experiment.kind == "ab_test"
           else f"`retrain rollout abort {model}`")
    why = (f"{decision.reason}; {kind} {experiment.id} ({experiment.version_a} vs "
           f"{experiment.version_b}) is running, so production stays: end it ({end}) and "
           f"run `retrain promote {version_id}`, or roll this version out after it")
    ws.registry.record(model, "awaiting-experiment", version_id=version_id, reason=why,
                       details={**details, "experiment_id": experiment.id}, actor=actor)
    log.info("%s waits for %s: %s", version_id, experiment.id, decision.reason)
    return decision.model_copy(update={"decision": "awaiting-experiment", "reason": why,
                                       "experiment_id": experiment.id})


def rollback_model(ws: Workspace, model_name: str, to: str | None = None, reason: str = "",
                   actor: str | None = None, notifier: NotificationService | None = None
                   ) -> dict[str, Any]:
    """Make an earlier production version (``to``, default the previous one) production again
    through the switch: announced before and after, smoke-checked, audited. An active A/B test
    or rollout of the model is ended by the rollback (named as ``ended_experiment``)."""
    target = ws.registry.rollback_target(model_name, to)
    current = ws.registry.production_version(model_name)
    current_id = current.version_id if current else None
    change = ProductionChange(model_name, target.version_id, "rollback",
                              reason or f"rollback from {current_id or 'none'}", actor=actor,
                              expected_production=current_id)
    result = change_production(ws, change, notifier or NotificationService(workspace=ws))
    now = ws.registry.production_version(model_name)
    return {"model": model_name, "production_version": now.version_id if now else None,
            "rolled_back_from": current_id, "reason": result.reason,
            "outcome": result.outcome,
            **({"ended_experiment": result.ended_experiment} if result.ended_experiment else {})}


def promote_by_hand(ws: Workspace, version_id: str, *, reason: str = "", actor: str | None = None,
                    force: bool = False, notifier: NotificationService | None = None
                    ) -> SwitchResult:
    """``retrain promote VERSION``: a person makes a version production, through the switch
    like every change (no approval: the person is the approver). ``force`` allows a version
    the rule rejected (audited as an override)."""
    version = ws.registry.get_version(version_id)
    production = ws.registry.production_version(version.model_name)
    change = ProductionChange(
        version.model_name, version.version_id, "promotion", reason or "manual promotion",
        actor=actor, expected_production=production.version_id if production else None,
        allow_rejected=force, candidate_metrics=version.metrics,
        production_metrics=production.metrics if production else None,
        details={"manual": True})
    return change_production(ws, change, notifier or NotificationService(workspace=ws))
