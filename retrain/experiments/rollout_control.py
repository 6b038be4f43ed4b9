"""People's controls over a model's rollout: status, pause, resume and abort.

Pause freezes the rollout at its current step (the traffic split stays and no step is taken;
the guardrail still rolls the candidate back on a breach). Resume restarts the current step's
clock. Abort sends all traffic back to
production at once (status stopped); production itself never changed during a rollout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select

from retrain.errors import RegistryError
from retrain.experiments import analysis, store
from retrain.experiments.rollout import (end_rollout, guardrail_breach, notifier_for, rollout_entry,
                                         step_gap, take_step_look)
from retrain.notify.service import NotificationService
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment, utcnow
from retrain.workspace import Workspace



def find_rollout(ws: Workspace, model_or_id: str, active: bool = True) -> Experiment:
    """The model's active rollout (or, with ``active=False``, its latest), or a rollout by id."""
    with ws.registry.reading() as s:
        by_id = s.get(Experiment, model_or_id)
        if by_id is not None and by_id.kind == "rollout":
            return by_id
        query = select(Experiment).where(Experiment.model_name == model_or_id,
                                         Experiment.kind == "rollout")
        if active:
            query = query.where(Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))
        found = s.exec(query.order_by(Experiment.started_at.desc(), Experiment.id.desc())).first()
    if found is None:
        if model_or_id not in {m.name for m in ws.registry.models()}:
            raise RegistryError(f"no registered model or rollout {model_or_id!r}")
        raise RegistryError(f"model {model_or_id!r} has no {'active ' if active else ''}rollout "
                            f"(start one with `retrain rollout start {model_or_id} VERSION`)")
    return found


def rollout_status(ws: Workspace, model_or_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The rollout's step, schedule, live numbers and guardrail verdict (latest if none active)."""
    experiment = find_rollout(ws, model_or_id, active=False)
    base = {"rollout_id": experiment.id, "strategy": experiment.strategy,
            "step": experiment.step, "steps": len(experiment.schedule),
            "traffic_percentage": rollout_entry(experiment, "")["traffic_percentage"],
            "schedule": experiment.schedule, "next_step_at": experiment.next_step_at}
    if experiment.status not in ACTIVE_EXPERIMENT_STATUSES:
        return {**experiment.result, "test_id": experiment.id, "model": experiment.model_name,
                "version_a": experiment.version_a, "version_b": experiment.version_b,
                "metric": experiment.metric, "started_at": experiment.started_at,
                "ended_at": experiment.ended_at, **base, "status": experiment.status}
    look = take_step_look(ws, experiment)
    document = analysis.describe(experiment, look, experiment.status, ws.settings.abtest,
                                 look.result.p_value, None)
    breach = guardrail_breach(experiment, look, ws)
    return {**document, **base, "guardrail": {
        "tolerance": ws.settings.rollout.guardrail_tolerance, "breach": breach,
        "enough_outcomes": look.enough, "min_outcomes": ws.settings.abtest.min_outcomes}}


def pause_rollout(ws: Workspace, model_name: str, *, actor: str | None = None,
                  reason: str = "") -> dict[str, Any]:
    experiment = find_rollout(ws, model_name)
    updated = store.change_experiment(
        ws.registry, experiment.id, ("running",), {"status": "paused"},
        [store.audit_event(experiment.model_name, "rollout-paused", version_id=experiment.version_b,
                           actor=actor, reason=reason or "paused",
                           details={"experiment_id": experiment.id, "step": experiment.step})])
    return rollout_entry(updated, "paused", reason or "paused")


def resume_rollout(ws: Workspace, model_name: str, *, actor: str | None = None, reason: str = "",
                   now: datetime | None = None) -> dict[str, Any]:
    experiment = find_rollout(ws, model_name)
    now = now or utcnow()
    gap = step_gap(experiment.schedule, experiment.step)
    updated = store.change_experiment(
        ws.registry, experiment.id, ("paused",),
        {"status": "running", "next_step_at": None if gap is None else now + gap},
        [store.audit_event(experiment.model_name, "rollout-resumed", version_id=experiment.version_b,
                           actor=actor, reason=reason or "resumed",
                           details={"experiment_id": experiment.id, "step": experiment.step})])
    return rollout_entry(updated, "resumed", reason or "resumed")


def abort_rollout(ws: Workspace, model_name: str, *, actor: str | None = None, reason: str = "",
                  now: datetime | None = None,
                  notifier: NotificationService | None = None) -> dict[str, Any]:
    experiment = find_rollout(ws, model_name)
    why = reason or f"aborted by {actor or store.default_actor()}"
    return end_rollout(ws, experiment, why, now or utcnow(), notifier_for(ws, notifier),
                      status="stopped", action="rollout-aborted", actor=actor)
