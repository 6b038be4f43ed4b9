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
3. **the target's artifact is verified** (sha256), and what the registry would refuse is
   refused, before anything is announced;
4. **the pending notice** ("X will replace Y"), written in one transaction with the switch's
   record (``ProductionSwitch``, state ``announced``), then delivered (or left queued when a
   channel is down);
5. **the conditional switch**: only if production is still the version the change was decided
   against (``expected_production``), in one registry transaction with its audit events, the
   record's move to ``switched`` and the rows of the notice after, which are *held*;
6. **the smoke check**, where a smoke sample exists (the one recorded when the version was
   evaluated): the deployed artifact re-scores it; any difference undoes the switch through
   this same function (back to the previous version, or withdrawing a first version), and
   the held notice is cancelled;
7. **the notice after** (promoted, rolled back, withdrawn) is released with the record's move
   to ``checked``, and delivered.

A switch that is refused after its pending notice went out (production changed meanwhile, an
experiment started) is followed by a notice that says it did not happen. A process that dies
part way leaves the record behind: :func:`finish_interrupted` (run by every pipeline run and
by ``retrain notify --flush``) sends the "did not happen" notice for a switch that never
committed, and runs the smoke check and releases (or cancels) the notices of one that did.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from sqlalchemy import update
from sqlmodel import Session, select

from retrain.errors import RegistryError
from retrain.evaluation.results import Evaluation, SmokeSample
from retrain.evaluation.smoke import recorded_smoke_sample, smoke_check
from retrain.experiments.store import active_experiment, get_experiment
from retrain.failpoints import failpoint
from retrain.notify.outbox import Outbox
from retrain.processes import owner_gone, process_owner
from retrain.promotion.approval import Approval, Approver
from retrain.registry.rules import ANY_PRODUCTION, experiment_refusal, switch_refusal
from retrain.registry.tables import ProductionSwitch, utcnow
from retrain.reporting import messages
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
    artifact, a version that cannot take this change); what was announced by then is
    followed by a notice that the change did not happen."""
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
        _guard(ws, change)  # the answer can take hours: an experiment may have started
        version = registry.get_version(change.version_id)
        _precheck(ws, change, version)
    if change.kind != "withdrawal":
        registry.verify_artifact(version)  # a broken artifact is refused before any notice
    sample = (recorded_smoke_sample(registry, change.version_id)
              if change.smoke_sample is LOOK_UP else change.smoke_sample)
    previous = _current(ws, change.model)
    record, pending = _announce(ws, change, previous, sample, notifier)
    notifier.flush()
    delivered = notifier.delivered(pending)
    failpoint("switch:announced")
    try:
        ended = _switch(ws, change, actor, record, previous, notifier)
    except RegistryError as exc:
        try:
            _abandon(ws, record, str(exc), notifier)
        except RegistryError:
            pass  # finished by another process (finish_interrupted) meanwhile
        raise
    failpoint("switch:switched")
    reason = _with_ended(ws, change.reason, ended)
    log.info("%s of %s: %s (was %s): %s", change.kind, change.model, change.version_id,
             previous or "none", reason)
    result = SwitchResult("switched", change.model, change.version_id, previous, reason,
                          approved_by=approved_by, notice_delivered=delivered,
                          ended_experiment=ended)
    problem = None if change.kind == "withdrawal" else smoke_check(ws, change.version_id, sample)
    failpoint("switch:checked")
    if problem is not None:
        _undo(ws, record, problem, notifier)
        return SwitchResult("undone", change.model, change.version_id, previous,
                            _undo_reason(record, problem), approved_by=approved_by,
                            notice_delivered=delivered, ended_experiment=ended)
    _release(ws, record, notifier)
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
    # Recorded first: the answer can take hours, and a candidate with nothing after
    # ``evaluated`` would look abandoned to another machine's run meanwhile.
    registry.record(change.model, "approval-requested", version_id=change.version_id,
                    reason=change.reason, actor=change.actor)
    answer = approver(change.evaluation, change.reason)
    registry.record(change.model, "approved" if answer.approved else "approval-rejected",
                    version_id=change.version_id, actor=answer.actor,
                    reason=answer.comment or ("approved" if answer.approved else "rejected"),
                    details={"decision_reason": change.reason})
    return answer


def _announce(ws: Workspace, change: ProductionChange, previous: str | None,
              sample: SmokeSample | None, notifier: "NotificationService"
              ) -> tuple[ProductionSwitch, list[int]]:
    """The switch's record and its pending notice, in one transaction."""
    record = ProductionSwitch(id=uuid.uuid4().hex, model_name=change.model,
                              version_id=change.version_id, previous_version=previous,
                              kind=change.kind, reason=change.reason, owner=process_owner(),
                              smoke_sample=None if sample is None else sample.to_dict())
    if change.kind == "withdrawal":
        notice = messages.pending_promotion(change.model, "nothing", previous,
                                            f"{change.version_id} is withdrawn: {change.reason}")
    else:
        notice = messages.pending_promotion(change.model, change.version_id, previous,
                                            change.reason, change.candidate_metrics,
                                            change.production_metrics)
    with ws.registry.transaction(change.model) as s:
        s.add(record)
        s.flush()
        ids = notifier.write(s, notice, switch_id=record.id)
    return record, ids


def _notice_after(change: ProductionChange, previous: str | None, reason: str):
    if change.kind == "promotion":
        return messages.promotion(change.model, change.version_id, change.improvement_percent,
                                  change.candidate_metrics or {}, previous=previous,
                                  production_metrics=change.production_metrics, reason=reason)
    if change.kind == "rollback":
        return messages.rollback(change.model, change.version_id, previous, reason)
    return messages.rollback(change.model, "none", change.version_id, reason)


def _with_ended(ws: Workspace, reason: str, ended: str | None) -> str:
    if ended is None:
        return reason
    experiment = get_experiment(ws.registry, ended)
    kind = "A/B test" if experiment.kind == "ab_test" else "rollout"
    return f"{reason}; ended {kind} {experiment.id} ({experiment.version_a} vs {experiment.version_b})"


def _move(session: Session, record_id: str, frm: str, to: str) -> None:
    """The record's state ``frm`` -> ``to``; RegistryError when another process moved it."""
    done = session.exec(update(ProductionSwitch).where(
        ProductionSwitch.id == record_id, ProductionSwitch.state == frm)
        .values(state=to, updated_at=utcnow()))
    if done.rowcount != 1:
        raise RegistryError(f"production switch {record_id} is no longer {frm}: another process "
                            "finished it")


def _switch(ws: Workspace, change: ProductionChange, actor: str | None, record: ProductionSwitch,
            previous: str | None, notifier: "NotificationService") -> str | None:
    """The registry transaction: the pointer, its audit events, the record's move to
    ``switched`` and the held notice after. Returns the experiment a rollback ended."""
    registry = ws.registry

    def within(session: Session) -> None:
        if change.close is not None:
            change.close(session)
        _move(session, record.id, "announced", "switched")
        reason = _with_ended(ws, change.reason, session.info.get("ended_experiment"))
        notifier.write(session, _notice_after(change, previous, reason), status="held",
                       switch_id=record.id)

    if change.kind == "withdrawal":
        registry.withdraw(change.version_id, reason=change.reason, actor=actor, within=within)
        return None
    if change.kind == "rollback":
        _, ended = registry.rollback_to(change.version_id, reason=change.reason, actor=actor,
                                        details=change.details, within=within,
                                        expected_production=change.expected_production)
        return ended
    registry.promote(change.version_id, reason=change.reason, actor=actor, details=change.details,
                     allow_rejected=change.allow_rejected,
                     expected_production=change.expected_production,
                     closing=change.closing, within=within)
    return None


def _release(ws: Workspace, record: ProductionSwitch, notifier: "NotificationService") -> None:
    """The check passed: the held notice goes out."""
    with ws.registry.transaction(record.model_name) as s:
        _move(s, record.id, "switched", "checked")
        Outbox.release_in(s, record.id)
    notifier.flush()


def _abandon(ws: Workspace, record: ProductionSwitch, why: str,
             notifier: "NotificationService") -> None:
    """The announced switch did not happen: say so."""
    current = _current(ws, record.model_name)
    with ws.registry.transaction(record.model_name) as s:
        _move(s, record.id, "announced", "abandoned")
        notifier.write(s, messages.switch_abandoned(record.model_name, record.version_id,
                                                    current, why), switch_id=record.id)
    log.warning("%s of %s to %s did not happen: %s", record.kind, record.model_name,
                record.version_id, why)
    notifier.flush()


def _undo_reason(record: ProductionSwitch, problem: str) -> str:
    return f"smoke check after {record.kind} failed: {problem}"


def _undo(ws: Workspace, record: ProductionSwitch, problem: str,
          notifier: "NotificationService") -> None:
    """The smoke check failed: the switch is undone through the switch, without a smoke check
    of its own (it would undo the undoing), back to the previous version or, when there is
    none or it is refused (say, its artifact is broken), by withdrawing the failed one. The
    failed switch's record becomes ``undone`` and its held notice is cancelled in the undoing's
    own transaction, so a crash before it leaves the record ``switched`` for
    :func:`finish_interrupted` to undo again."""
    why = _undo_reason(record, problem)
    log.error("%s: %s", record.version_id, why)

    def close(session: Session) -> None:
        _move(session, record.id, "switched", "undone")
        Outbox.cancel_in(session, record.id)

    withdrawal = ProductionChange(record.model_name, record.version_id, "withdrawal", why,
                                  smoke_sample=None, close=close)
    if record.previous_version is not None:
        rollback = ProductionChange(record.model_name, record.previous_version, "rollback", why,
                                    expected_production=record.version_id, smoke_sample=None,
                                    details={"rolled_back_from": record.version_id,
                                             "smoke_check": problem}, close=close)
        try:
            change_production(ws, rollback, notifier)
            return
        except RegistryError as exc:
            if _current(ws, record.model_name) != record.version_id:
                raise  # production moved on meanwhile, or another process undid it
            log.error("%s: rolling back to %s was refused (%s); withdrawing %s instead",
                      record.model_name, record.previous_version, exc, record.version_id)
    change_production(ws, withdrawal, notifier)


# After a crash -------------------------------------------------------------------------------

def finish_interrupted(ws: Workspace, notifier: "NotificationService") -> list[str]:
    """Finish the switches whose process died part way; returns what was done, one line each.

    Announced, never switched: a notice says the change did not happen. Switched: the smoke
    check runs now, and the held notice is released, or cancelled and the switch undone."""
    registry = ws.registry
    with registry.reading() as s:
        open_records = list(s.exec(select(ProductionSwitch).where(
            ProductionSwitch.state.in_(("announced", "switched")))
            .order_by(ProductionSwitch.created_at)))
    done = []
    for record in open_records:
        if not owner_gone(record.owner, record.updated_at, utcnow()):
            continue
        try:
            done.append(_finish(ws, record, notifier))
        except RegistryError as exc:  # another process finished it meanwhile
            log.info("switch %s: %s", record.id, exc)
    return done


def _finish(ws: Workspace, record: ProductionSwitch, notifier: "NotificationService") -> str:
    what = f"{record.kind} of {record.model_name} to {record.version_id}"
    if record.state == "announced":
        _abandon(ws, record, "the process making the change stopped before the switch",
                 notifier)
        return f"{what}: never switched; said so"
    if _current(ws, record.model_name) != record.version_id or record.kind == "withdrawal":
        _release(ws, record, notifier)  # switched, and production has moved on since
        return f"{what}: switched; its notice released"
    sample = None if record.smoke_sample is None else SmokeSample.from_dict(record.smoke_sample)
    problem = smoke_check(ws, record.version_id, sample)
    if problem is None:
        _release(ws, record, notifier)
        return f"{what}: switched, smoke check passed; its notice released"
    _undo(ws, record, problem, notifier)
    return f"{what}: switched, smoke check failed; undone"
