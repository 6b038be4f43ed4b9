"""Promotion: promote a candidate only when it is enough better than production, with
approval when required, a notice before the change, a smoke check after it, and rollback."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retrain.evaluation.smoke import smoke_check
from retrain.promotion.approval import Approver, requires_approval
from retrain.promotion.rule import decide
from retrain.registry.registry import ActiveExperimentError
from retrain.workspace import Workspace

if TYPE_CHECKING:
    from retrain.notify import NotificationService

log = logging.getLogger("retrain")


def apply_decision(ws: Workspace, evaluation: dict[str, Any],
                   min_relative_improvement: float | None = None, actor: str | None = None,
                   notifier: "NotificationService | None" = None,
                   approver: Approver | None = None) -> dict[str, Any]:
    """Decide, ask for approval when required, announce, switch, verify, announce.

    The order matters: the "pending promotion" notice is delivered before the production
    pointer moves; after the switch a smoke check re-scores the deployed artifact and rolls
    back (or withdraws a first version) on any difference.

    While the model has a live A/B test or rollout, production stays: the decision is
    ``awaiting-experiment``, also when the experiment started while approval was pending.
    """
    from retrain.notify import NotificationService

    notifier = notifier or NotificationService(workspace=ws)
    decision, reason = decide(evaluation, ws.settings.promotion, min_relative_improvement)
    if min_relative_improvement is None:
        min_relative_improvement = ws.settings.promotion.min_relative_improvement
    model = evaluation["model"]
    version_id = evaluation["candidate_version"]
    previous = evaluation.get("production_version")
    metrics = evaluation["metrics"]
    details = {"metric": evaluation["metric"],
               "relative_improvement": evaluation["relative_improvement"],
               "threshold": min_relative_improvement, "metrics": metrics,
               "interval": evaluation.get("interval"), "guardrails": evaluation.get("guardrails")}
    result = {"model": model, "version_id": version_id, "decision": decision, "reason": reason,
              "production_version_before": previous,
              "relative_improvement": evaluation["relative_improvement"]}

    if decision != "rejected" and (experiment := _live_experiment(ws, model)) is not None:
        # Production must not move under a live A/B test or rollout: its traffic would keep
        # going to the experiment's versions, and the experiment would compare the wrong ones.
        return _await_experiment(ws, experiment, result, details, actor)

    if decision != "rejected" and requires_approval(ws, model):
        if approver is None:
            ws.registry.record(model, "awaiting-approval", version_id=version_id, reason=reason,
                               details=details, actor=actor)
            log.info("%s awaits approval: %s", version_id, reason)
            return {**result, "decision": "awaiting-approval",
                    "reason": f"{reason}; approval required (promote by hand with "
                              f"`retrain promote {version_id}`)"}
        answer = approver(evaluation, reason)
        ws.registry.record(model, "approved" if answer.approved else "approval-rejected",
                           version_id=version_id, actor=answer.actor,
                           reason=answer.comment or ("approved" if answer.approved else "rejected"),
                           details={"decision_reason": reason})
        if not answer.approved:
            decision = "rejected"
            reason = f"{reason}; rejected by {answer.actor}" + (f": {answer.comment}" if answer.comment else "")
            result.update(decision=decision, reason=reason)
        else:
            actor = answer.actor
            result["approved_by"] = answer.actor

    if decision == "rejected":
        ws.registry.reject(version_id, reason=reason, actor=actor, details=details)
        notifier.send_rejection(model, version_id, reason, metrics["candidate"], metrics["production"])
        log.info("rejected %s: %s", version_id, reason)
        return result

    # Approval can take hours: an A/B test or rollout may have started meanwhile.
    if (experiment := _live_experiment(ws, model)) is not None:
        return _await_experiment(ws, experiment, result, details, actor)
    # Notice before change: delivered (or, if a channel is down, queued first) before the switch.
    notice = notifier.send_pending_promotion(model, version_id, previous, reason,
                                             metrics["candidate"], metrics["production"])
    result["notice_delivered"] = notifier.delivered(notice)
    # Only switch if production is still the version this candidate was compared with, and
    # no experiment routes the model's traffic (one may start right up to the switch).
    try:
        ws.registry.promote(version_id, reason=reason, actor=actor, details=details,
                            expected_production=previous)
    except ActiveExperimentError as exc:
        from retrain.experiments.store import get_experiment
        return _await_experiment(ws, get_experiment(ws.registry, exc.experiment_id), result,
                                 details, actor)
    log.info("%s %s: %s", decision, version_id, reason)
    problem = smoke_check(ws, version_id, evaluation.get("smoke_sample"))
    if problem is not None:
        why = f"smoke check after promotion failed: {problem}"
        log.error("%s: %s", version_id, why)
        if previous is not None:
            ws.registry.rollback(model, to=previous, reason=why)
            notifier.send_rollback(model, previous, version_id, why)
        else:
            ws.registry.withdraw(version_id, reason=why)
            notifier.send_rollback(model, "none", version_id, why)
        return {**result, "decision": "rolled-back", "reason": why}
    improvement = evaluation["relative_improvement"]
    notifier.send_promotion_notification(
        model, version_id, None if improvement is None else 100 * improvement, metrics["candidate"],
        previous=previous, production_metrics=metrics["production"], reason=reason)
    return result


def _await_experiment(ws: Workspace, experiment, result: dict[str, Any],
                      details: dict[str, Any], actor: str | None) -> dict[str, Any]:
    """Leave production alone while ``experiment`` is live: audited, decision
    ``awaiting-experiment`` with how to go on."""
    model, version_id = result["model"], result["version_id"]
    kind = "A/B test" if experiment.kind == "ab_test" else "rollout"
    end = (f"`retrain ab end {experiment.id}`" if experiment.kind == "ab_test"
           else f"`retrain rollout abort {model}`")
    why = (f"{result['reason']}; {kind} {experiment.id} ({experiment.version_a} vs "
           f"{experiment.version_b}) is running, so production stays: end it ({end}) and "
           f"run `retrain promote {version_id}`, or roll this version out after it")
    ws.registry.record(model, "awaiting-experiment", version_id=version_id, reason=why,
                       details={**details, "experiment_id": experiment.id}, actor=actor)
    log.info("%s waits for %s: %s", version_id, experiment.id, result["reason"])
    return {**result, "decision": "awaiting-experiment", "reason": why,
            "experiment_id": experiment.id}


def _live_experiment(ws: Workspace, model_name: str):
    """The model's running or paused A/B test or rollout, if any."""
    from retrain.experiments.store import active_experiment
    return active_experiment(ws.registry, model_name)


def rollback_model(ws: Workspace, model_name: str, to: str | None = None, reason: str = "",
                   actor: str | None = None, notifier: "NotificationService | None" = None
                   ) -> dict[str, Any]:
    """Make an earlier production version production again; audited and notified. An active
    A/B test or rollout of the model is ended by the rollback (named as ``ended_experiment``)."""
    from retrain.notify import NotificationService

    current = ws.registry.production_version(model_name)
    live = _live_experiment(ws, model_name)
    version = ws.registry.rollback(model_name, to=to, reason=reason, actor=actor)
    why = reason or f"rollback from {current.version_id if current else 'none'}"
    ended = None
    if live is not None:  # the rollback ends it (unless it ended on its own meanwhile)
        from retrain.experiments.store import get_experiment
        after = get_experiment(ws.registry, live.id)
        if after.result.get("ended_by_rollback_to") == version.version_id:
            ended = live.id
            kind = "A/B test" if live.kind == "ab_test" else "rollout"
            why = f"{why}; ended {kind} {live.id} ({live.version_a} vs {live.version_b})"
    (notifier or NotificationService(workspace=ws)).send_rollback(
        model_name, version.version_id, current.version_id if current else None, why)
    return {"model": model_name, "production_version": version.version_id,
            "rolled_back_from": current.version_id if current else None, "reason": why,
            **({"ended_experiment": ended} if ended else {})}


