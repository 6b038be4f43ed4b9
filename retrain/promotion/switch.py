"""The one production switch: every change of a model's production version goes through
:func:`change_production`, whoever asks for it.

The changes: a pipeline promotion, ``retrain promote``, an A/B test's winner, a rollout
reaching 100%, a rollback (``retrain rollback``, the ``rollback-model`` flow,
``ModelPromoter.rollback``), and the smoke check's automatic rollback. Each takes the same
path, in this order:

1. **the live-experiment guard**: while the model has a running or paused A/B test or
   rollout, its traffic goes to the experiment's versions, so production stays
   (``ActiveExperimentError``), unless the change is that experiment's own end (``closing``)
   or a rollback, which ends the experiment in the switch's transaction;
2. **approval**, where the change requires it (a pipeline promotion under
   ``require_approval``); no approver leaves it ``awaiting-approval``; the guard is checked
   again after the answer, which can take hours;
3. **the target's artifact is verified** (sha256) before anything is announced;
4. **the pending notice** ("X will replace Y") is delivered, or queued first when a channel
   is down;
5. **the conditional switch**: only if production is still the version the change was decided
   against (``expected_production``), in one registry transaction with its audit events;
6. **the smoke check**, where a smoke sample exists (the one recorded when the version was
   evaluated): the deployed artifact re-scores it; any difference undoes the switch through
   this same function (back to the previous version, or withdrawing a first version);
7. **the notice after**: promoted, rolled back, or withdrawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from sqlmodel import Session

from retrain.errors import RegistryError
from retrain.evaluation.results import Evaluation, SmokeSample
from retrain.evaluation.smoke import recorded_smoke_sample, smoke_check
from retrain.experiments.store import active_experiment, get_experiment
from retrain.promotion.approval import Approval, Approver
from retrain.registry.rules import ANY_PRODUCTION, experiment_refusal, switch_refusal
from retrain.workspace import Workspace

if TYPE_CHECKING:
    from retrain.notify.service import NotificationService

log = logging.getLogger("retrain")

ChangeKind = Literal["promotion", "rollback", "withdrawal"]
Outcome = Literal["switched", "undone", "awaiting-approval", "approval-rejected"]
LOOK_UP = object()  # ProductionChange.smoke_sample: the one recorded at the version's evaluation


@dataclass
class ProductionChange:
    """One change of ``model``'s production version, and what its notices and audit say.

    ``version_id`` becomes production (``promotion``, ``rollback``), or, for a
    ``withdrawal``, is taken out of production with no replacement."""

    model: str
    version_id: str
    kind: ChangeKind
    reason: str
    actor: str | None = None
    # The version the change was decided against (None: no production version yet); the
    # switch refuses when production is something else by then.
    expected_production: str | None | object = ANY_PRODUCTION
    requires_approval: bool = False
    allow_rejected: bool = False  # a version rejected offline (--force, an experiment's winner)
    smoke_sample: SmokeSample | None | object = LOOK_UP
    evaluation: Evaluation | None = None  # shown to the approver
    candidate_metrics: dict[str, float] | None = None  # for the notices
    production_metrics: dict[str, float] | None = None
    improvement_percent: float | None = None
    details: dict[str, Any] = field(default_factory=dict)  # the numbers, for the audit log
    # An experiment's own promotion: its id, and what closes it inside the switch's
    # transaction (raising RegistryError there undoes the switch too).
    closing: str | None = None
    close: Callable[[Session], None] | None = None


@dataclass
class SwitchResult:
    """What became of a change. ``switched``: done and verified; ``undone``: the smoke check
    failed and production is back as it was (``reason`` says why); ``awaiting-approval`` and
    ``approval-rejected``: production never moved."""

    outcome: Outcome
    model: str
    version_id: str
    previous: str | None
    reason: str
    approved_by: str | None = None
    notice_delivered: bool | None = None
    ended_experiment: str | None = None


def change_production(ws: Workspace, change: ProductionChange, notifier: "NotificationService",
                      approver: Approver | None = None) -> SwitchResult:
    """Make ``change`` in the order the module describes; raises ``ActiveExperimentError``
    under a live experiment and ``RegistryError`` (production changed meanwhile, a broken
    artifact, a version that cannot take this change) with nothing changed or announced."""
    registry = ws.registry
    version = registry.get_version(change.version_id)
    if version.model_name != change.model:
        raise RegistryError(f"version {change.version_id!r} belongs to model {version.model_name!r}")
    _guard(ws, change)
    _precheck(ws, change, version)
    actor = change.actor
    approved_by = None
    if change.requires_approval:
        answer = _ask(ws, change, approver)
        if answer is None:
            return SwitchResult("awaiting-approval", change.model, change.version_id,
                                _current(ws, change.model), change.reason)
        if not answer.approved:
            why = f"rejected by {answer.actor}" + (f": {answer.comment}" if answer.comment else "")
            return SwitchResult("approval-rejected", change.model, change.version_id,
                                _current(ws, change.model), why, approved_by=answer.actor)
        actor = approved_by = answer.actor
        _guard(ws, change)  # approval can take hours: an experiment may have started
    if change.kind != "withdrawal":
        if change.requires_approval:  # the answer took its time: check again
            version = registry.get_version(change.version_id)
            _precheck(ws, change, version)
        registry.verify_artifact(version)  # a broken artifact is refused before any notice
    previous = _current(ws, change.model)
    pending = _pending_notice(notifier, change, previous)
    delivered = notifier.delivered(pending)
    switched, ended = _switch(ws, change, actor)
    reason = change.reason
    if ended is not None:
        experiment = get_experiment(registry, ended)
        kind = "A/B test" if experiment.kind == "ab_test" else "rollout"
        reason = (f"{reason}; ended {kind} {experiment.id} ({experiment.version_a} vs "
                  f"{experiment.version_b})")
    log.info("%s of %s: %s (was %s): %s", change.kind, change.model, change.version_id,
             previous or "none", reason)
    result = SwitchResult("switched", change.model, change.version_id, previous, reason,
                          approved_by=approved_by, notice_delivered=delivered,
                          ended_experiment=ended)
    if change.kind != "withdrawal":
        sample = (recorded_smoke_sample(registry, change.version_id)
                  if change.smoke_sample is LOOK_UP else change.smoke_sample)
        problem = smoke_check(ws, switched.version_id, sample)
        if problem is not None:
            return _undo(ws, change, previous, problem, notifier, result)
    _notice_after(notifier, change, previous, reason)
    return result


# The steps ---------------------------------------------------------------------------------

def _current(ws: Workspace, model: str) -> str | None:
    production = ws.registry.production_version(model)
    return None if production is None else production.version_id


def _guard(ws: Workspace, change: ProductionChange) -> None:
    """Production stays under a live experiment, unless this change ends it."""
    if change.kind != "promotion":
        return  # a rollback ends the experiment; a withdrawal follows a failed switch
    live = active_experiment(ws.registry, change.model)
    if live is not None and live.id != change.closing:
        raise experiment_refusal(change.version_id, live)


def _precheck(ws: Workspace, change: ProductionChange, version) -> None:
    """What the registry would refuse, refused before anything is asked or announced."""
    if change.kind == "withdrawal":
        if version.status != "production":
            raise RegistryError(f"{change.version_id} is {version.status}, not production")
        return
    refusal = switch_refusal(version, _current(ws, change.model),
                             action="rolled-back" if change.kind == "rollback" else "promoted",
                             allow_rejected=change.allow_rejected,
                             expected_production=change.expected_production)
    if refusal is not None:
        raise RegistryError(refusal)


def _ask(ws: Workspace, change: ProductionChange, approver: Approver | None) -> Approval | None:
    """The person's answer, audited; None (also audited) when nobody can be asked here."""
    registry = ws.registry
    if approver is None:
        registry.record(change.model, "awaiting-approval", version_id=change.version_id,
                        reason=change.reason, details=change.details, actor=change.actor)
        log.info("%s awaits approval: %s", change.version_id, change.reason)
        return None
    answer = approver(change.evaluation, change.reason)
    registry.record(change.model, "approved" if answer.approved else "approval-rejected",
                    version_id=change.version_id, actor=answer.actor,
                    reason=answer.comment or ("approved" if answer.approved else "rejected"),
                    details={"decision_reason": change.reason})
    return answer


def _pending_notice(notifier: "NotificationService", change: ProductionChange,
                    previous: str | None) -> list[int]:
    if change.kind == "withdrawal":
        return notifier.send_pending_promotion(
            change.model, "nothing", previous, f"{change.version_id} is withdrawn: {change.reason}")
    return notifier.send_pending_promotion(change.model, change.version_id, previous,
                                           change.reason, change.candidate_metrics,
                                           change.production_metrics)


def _switch(ws: Workspace, change: ProductionChange, actor: str | None):
    """The registry transaction; returns (the version, the experiment a rollback ended)."""
    registry = ws.registry
    if change.kind == "withdrawal":
        return registry.withdraw(change.version_id, reason=change.reason, actor=actor), None
    if change.kind == "rollback":
        version, ended = registry.rollback_to(
            change.version_id, reason=change.reason, actor=actor, details=change.details,
            expected_production=change.expected_production)
        return version, ended
    version = registry.promote(change.version_id, reason=change.reason, actor=actor,
                               details=change.details, allow_rejected=change.allow_rejected,
                               expected_production=change.expected_production,
                               closing=change.closing, within=change.close)
    return version, None


def _undo(ws: Workspace, change: ProductionChange, previous: str | None, problem: str,
          notifier: "NotificationService", switched: SwitchResult) -> SwitchResult:
    """The smoke check failed: back to ``previous`` (or no production version), through the
    switch, without a smoke check of its own (it would undo the undoing)."""
    why = f"smoke check after {change.kind} failed: {problem}"
    log.error("%s: %s", change.version_id, why)
    if previous is not None:
        undo = ProductionChange(change.model, previous, "rollback", why, actor=change.actor,
                                expected_production=change.version_id, smoke_sample=None,
                                details={"rolled_back_from": change.version_id,
                                         "smoke_check": problem})
    else:
        undo = ProductionChange(change.model, change.version_id, "withdrawal", why,
                                actor=change.actor, smoke_sample=None)
    change_production(ws, undo, notifier)
    return SwitchResult("undone", change.model, change.version_id, previous, why,
                        approved_by=switched.approved_by,
                        notice_delivered=switched.notice_delivered,
                        ended_experiment=switched.ended_experiment)


def _notice_after(notifier: "NotificationService", change: ProductionChange,
                  previous: str | None, reason: str) -> None:
    if change.kind == "promotion":
        notifier.send_promotion_notification(
            change.model, change.version_id, change.improvement_percent,
            change.candidate_metrics or {}, previous=previous,
            production_metrics=change.production_metrics, reason=reason)
    elif change.kind == "rollback":
        notifier.send_rollback(change.model, change.version_id, previous, reason)
    else:
        notifier.send_rollback(change.model, "none", change.version_id, reason)
