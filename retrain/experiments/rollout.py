"""Rollouts: a candidate version takes over a model's traffic step by step, guarded by its
live numbers against production, and becomes production at 100%.

Strategies (``[rollout]`` holds the defaults):

- ``IMMEDIATE``: one step, 100% at once: the candidate is promoted now.
- ``CANARY``: ``initial_traffic`` first, then ``+increment`` every ``increment_interval_hours``
  until 100% (10, 30, 50, 70, 90, 100 with the defaults).
- ``GRADUAL``: ``steps`` equal steps, one every ``increment_interval_hours`` (25, 50, 75, 100
  with 4 steps).

The schedule is a list of ``{step, traffic_percentage, delay_hours}``; ``delay_hours`` counts
from the start of the rollout. ``advance_rollouts`` (the hourly ``rollout-advance``
deployment, or ``retrain rollout advance``) moves each rollout on. A step waits until it is
due, and (unless ``advance_without_outcomes``) until both variants have ``[abtest]
min_outcomes`` outcomes. The guardrail is checked at every run, due or not, and also while the
rollout is paused (a pause keeps the split and only stops steps); it is breached,
and the candidate rolled back to 0% at once, when

1. the traffic of the current step does not match its share (SRM check at ``[abtest]
   srm_alpha``, on the requests since the step began), or
2. with ``min_outcomes`` outcomes per variant, the candidate is significantly worse than
   production (the always-valid interval of the difference lies entirely on the worse side
   of 0) and its estimated shortfall exceeds ``[rollout] guardrail_tolerance`` (absolute, on
   ``[abtest] metric``).

When the next step would be 100%, the candidate is promoted through the registry, on the
condition that production is still the version the rollout started from; the promotion and
the completion of the rollout are one transaction. While a rollout is active, ``promote``
refuses other versions, and ``rollback`` ends the rollout (see ``retrain.registry``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from retrain.errors import ConfigError, RegistryError
from retrain.experiments import analysis, store
from retrain.experiments.store import resolve_version
from retrain.promotion.switch import ProductionChange, change_production
from retrain.notify.service import NotificationService
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment, utcnow
from retrain.workspace import Workspace


log = logging.getLogger("retrain")


class RolloutStrategy(str, Enum):
    IMMEDIATE = "immediate"
    CANARY = "canary"
    GRADUAL = "gradual"


def _number(value: Any) -> int | float:
    """10.0 -> 10, so a schedule prints as the seed's does ("Step 1: 10% after 0h")."""
    value = round(float(value), 6)
    return int(value) if value.is_integer() else value


def parse_strategy(value: RolloutStrategy | str) -> RolloutStrategy:
    try:
        return value if isinstance(value, RolloutStrategy) else RolloutStrategy(str(value).lower())
    except ValueError:
        raise ConfigError(f"unknown rollout strategy {value!r}; expected one of "
                          f"{', '.join(s.value for s in RolloutStrategy)}") from None


def _share(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a share of traffic in (0, 1], e.g. 0.1 for 10%; "
                          f"got {value!r}")
    return float(value)


def build_schedule(strategy: RolloutStrategy | str, *, initial_traffic: float = 0.1,
                   increment: float = 0.2, interval_hours: float = 24.0, steps: int = 4
                   ) -> list[dict[str, Any]]:
    """The rollout's steps as ``{step, traffic_percentage, delay_hours}`` (see module doc)."""
    strategy = parse_strategy(strategy)
    if isinstance(interval_hours, bool) or not isinstance(interval_hours, (int, float)) \
            or not interval_hours > 0:
        raise ConfigError(f"increment_interval_hours must be a positive number; got {interval_hours!r}")
    if strategy is RolloutStrategy.IMMEDIATE:
        percentages = [100.0]
    elif strategy is RolloutStrategy.CANARY:
        first, step = 100 * _share("initial_traffic", initial_traffic), 100 * _share("increment", increment)
        percentages = [first]
        while percentages[-1] < 100 - 1e-9:
            percentages.append(min(100.0, round(first + step * len(percentages), 6)))
    else:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be a whole number >= 1; got {steps!r}")
        percentages = [100 * k / steps for k in range(1, steps + 1)]
    return [{"step": i + 1, "traffic_percentage": _number(p), "delay_hours": _number(i * interval_hours)}
            for i, p in enumerate(percentages)]


def step_gap(schedule: list[dict[str, Any]], step: int) -> timedelta | None:
    """Time from step ``step`` (1-based) to the next one; None at the last step."""
    if step >= len(schedule):
        return None
    return timedelta(hours=schedule[step]["delay_hours"] - schedule[step - 1]["delay_hours"])


def notifier_for(ws: Workspace, notifier: NotificationService | None) -> NotificationService:
    return notifier or NotificationService(workspace=ws)


def start_rollout(ws: Workspace, model_name: str, new_version: str | int,
                  strategy: RolloutStrategy | str | None = None, *,
                  initial_traffic: float | None = None, increment: float | None = None,
                  interval_hours: float | None = None, steps: int | None = None,
                  actor: str | None = None, now: datetime | None = None,
                  notifier: NotificationService | None = None) -> dict[str, Any]:
    """Start rolling ``new_version`` out against the production version (see module doc)."""
    cfg = ws.settings.rollout
    strategy = parse_strategy(cfg.strategy if strategy is None else strategy)
    if strategy is not RolloutStrategy.CANARY and (initial_traffic is not None or increment is not None):
        raise ConfigError(f"initial_traffic and increment apply to canary rollouts; a {strategy.value} "
                          "rollout " + ("takes [rollout] steps equal steps" if strategy is
                                        RolloutStrategy.GRADUAL else "goes to 100% at once"))
    schedule = build_schedule(
        strategy, initial_traffic=cfg.initial_traffic if initial_traffic is None else initial_traffic,
        increment=cfg.increment if increment is None else increment,
        interval_hours=cfg.increment_interval_hours if interval_hours is None else interval_hours,
        steps=cfg.steps if steps is None else steps)
    candidate = resolve_version(ws.registry, model_name, new_version)
    ws.registry.verify_artifact(candidate)  # its share of the traffic would get 503 otherwise
    production = ws.registry.production_version(model_name)
    if production is None:
        raise RegistryError(f"model {model_name!r} has no production version to roll out from; "
                            f"make a first version production with `retrain promote`")
    if candidate.version_id == production.version_id:
        raise RegistryError(f"{candidate.version_id} is already production")
    now = now or utcnow()
    gap = step_gap(schedule, 1)
    fields = dict(kind="rollout", model_name=model_name, version_a=production.version_id,
                  version_b=candidate.version_id, traffic_b=schedule[0]["traffic_percentage"] / 100,
                  salt=secrets.token_hex(8), status="running",
                  metric=ws.settings.abtest.metric_for(production.task),
                  strategy=strategy.value, schedule=schedule, step=1,
                  next_step_at=None if gap is None else now + gap, started_at=now,
                  ends_at=now + timedelta(hours=schedule[-1]["delay_hours"]),
                  result={"production_at_start": production.version_id,
                          "step_started_at": now.isoformat()},
                  created_by=actor or store.default_actor())
    event = store.audit_event(model_name, "rollout-started", version_id=candidate.version_id,
                              actor=actor, reason=f"{strategy.value} rollout of "
                                                  f"{candidate.version_id} replacing {production.version_id}",
                              details={"strategy": strategy.value, "schedule": schedule})
    experiment = store.create_experiment(ws.registry, fields, event)
    notifier = notifier_for(ws, notifier)
    log.info("rollout %s started: %s at %s%%", experiment.id, candidate.version_id,
             schedule[0]["traffic_percentage"])
    status = "running"
    if experiment.traffic_b >= 1.0:
        status = _complete(ws, experiment, now, notifier, actor)["action"]
    else:
        notifier.send_rollout_step(model_name, experiment.id, candidate.version_id, 1,
                                   len(schedule), schedule[0]["traffic_percentage"],
                                   f"Started by {fields['created_by']}.")
    return {"rollout_id": experiment.id, "model_name": model_name,
            "new_version": candidate.version_id, "production_version": production.version_id,
            "strategy": strategy.value, "schedule": schedule, "status": status, "current_step": 1,
            "traffic_percentage": schedule[0]["traffic_percentage"],
            "next_step_at": experiment.next_step_at}


# Advancing ----------------------------------------------------------------------------------

def rollout_entry(experiment: Experiment, action: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    return {"rollout_id": experiment.id, "model": experiment.model_name,
            "version": experiment.version_b, "production_version": experiment.version_a,
            "action": action, "step": experiment.step, "steps": len(experiment.schedule),
            "traffic_percentage": _number(100 * experiment.traffic_b),
            "next_step_at": experiment.next_step_at, "reason": reason, **extra}


def guardrail_breach(experiment: Experiment, look: analysis.Look, ws: Workspace) -> str | None:
    """Why the candidate must be rolled back, or None (the rule is in the module doc)."""
    abtest, tolerance = ws.settings.abtest, ws.settings.rollout.guardrail_tolerance
    if look.srm_mismatch:
        srm = look.srm
        return (f"sample ratio mismatch in step {experiment.step}: {srm.observed[1]} of "
                f"{sum(srm.observed)} requests went to {experiment.version_b}, expected "
                f"{look.srm_share_b:.1%} (p = {srm.p_value:.2g} < {abtest.srm_alpha})")
    if not look.enough:
        return None
    r = look.result
    better_up = analysis.higher_is_better(experiment.metric)
    shortfall = -r.lift if better_up else r.lift
    shortfall_low = -r.ci_high if better_up else r.ci_low
    if shortfall_low > 0 and shortfall > tolerance:
        return (f"{experiment.version_b} is worse than {experiment.version_a} on "
                f"{experiment.metric}: {look.means['B']:.4f} vs {look.means['A']:.4f} "
                f"({look.outcomes['B']} and {look.outcomes['A']} outcomes), short by "
                f"{shortfall:.4f} > tolerance {tolerance}; the always-valid interval of the "
                f"difference [{r.ci_low:+.4f}, {r.ci_high:+.4f}] excludes no difference")
    return None


def take_step_look(ws: Workspace, experiment: Experiment) -> analysis.Look:
    """The rollout's numbers; the SRM check counts the requests of the current step only,
    after a grace period for services whose routing cache still holds the previous split."""
    started = experiment.result.get("step_started_at")
    since = None
    if started:
        since = datetime.fromisoformat(started) + timedelta(
            seconds=2 * ws.settings.serve.refresh_seconds)
    return analysis.take_look(ws.registry, experiment, ws.settings.abtest, srm_since=since)


def advance_rollouts(workspace: Workspace, now: datetime | None = None,
                     notifier: NotificationService | None = None) -> list[dict[str, Any]]:
    """One pass over every active rollout: roll back on a guardrail breach, advance the ones
    that are due, promote at 100%. One entry per rollout, with ``action`` one of advanced,
    held, paused, rolled-back, completed or failed, and the ``reason``."""
    now = now or utcnow()
    results = []
    for experiment in store.list_experiments(workspace.registry, kind="rollout", active_only=True):
        try:
            results.append(_advance(workspace, experiment, now, notifier))
        except RegistryError as exc:  # one model's conflict must not stop the others
            log.error("rollout %s: %s", experiment.id, exc)
            results.append(rollout_entry(experiment, "failed", str(exc)))
    return results


def _advance(ws: Workspace, experiment: Experiment, now: datetime,
             notifier: NotificationService | None) -> dict[str, Any]:
    schedule = experiment.schedule
    paused = experiment.status == "paused"
    if experiment.traffic_b >= 1.0 and not paused:  # an immediate rollout cut off before its promotion
        return _complete(ws, experiment, now, notifier_for(ws, notifier))
    # The guardrail acts on paused rollouts too: pausing keeps the split, it only stops steps.
    look = take_step_look(ws, experiment)
    breach = guardrail_breach(experiment, look, ws)
    if breach is not None:
        return end_rollout(ws, experiment, breach, now, notifier_for(ws, notifier), look)
    if paused:
        return rollout_entry(experiment, "paused", "paused; `retrain rollout resume` continues it")
    following = schedule[experiment.step] if experiment.step < len(schedule) else None
    if experiment.next_step_at is not None and now < experiment.next_step_at:
        return rollout_entry(experiment, "held", f"next step ({following['traffic_percentage']}%) is "
                                          f"due at {experiment.next_step_at:%Y-%m-%d %H:%M} UTC")
    if not look.enough and not ws.settings.rollout.advance_without_outcomes:
        return rollout_entry(experiment, "held", f"waiting for {ws.settings.abtest.min_outcomes} outcomes "
                                          f"per variant (A {look.outcomes['A']}, B "
                                          f"{look.outcomes['B']}) so the guardrail can judge")
    if following is None or following["traffic_percentage"] >= 100:
        return _complete(ws, experiment, now, notifier_for(ws, notifier))
    step = experiment.step + 1
    gap = step_gap(schedule, step)
    reason = _health(experiment, look)
    updated = store.change_experiment(
        ws.registry, experiment.id, ("running",),
        {"step": step, "traffic_b": following["traffic_percentage"] / 100,
         "next_step_at": None if gap is None else now + gap,
         "result": {**experiment.result, "step_started_at": now.isoformat()}},
        [store.audit_event(experiment.model_name, "rollout-step", version_id=experiment.version_b,
                           reason=f"{experiment.id} step {step}: "
                                  f"{following['traffic_percentage']}% to {experiment.version_b}; {reason}",
                           details={"experiment_id": experiment.id, "step": step,
                                    "traffic_percentage": following["traffic_percentage"]})],
        expected_step=experiment.step)
    notifier_for(ws, notifier).send_rollout_step(
        experiment.model_name, experiment.id, experiment.version_b, step, len(schedule),
        following["traffic_percentage"], reason)
    return rollout_entry(updated, "advanced", reason)


def _health(experiment: Experiment, look: analysis.Look) -> str:
    means = {v: "-" if m is None else f"{m:.4f}" for v, m in look.means.items()}
    return (f"guardrail fine: {experiment.metric} {means['B']} ({look.outcomes['B']} outcomes) vs "
            f"{means['A']} in production ({look.outcomes['A']} outcomes)")


def end_rollout(ws: Workspace, experiment: Experiment, reason: str, now: datetime,
               notifier: NotificationService, look: analysis.Look | None = None,
               status: str = "rolled-back", action: str = "rollout-rolled-back",
               actor: str | None = None) -> dict[str, Any]:
    """Send no more traffic to the candidate; production is unchanged."""
    document = {} if look is None else analysis.describe(experiment, look, status, ws.settings.abtest,
                                                         look.result.p_value, None)
    updated = store.change_experiment(
        ws.registry, experiment.id, ACTIVE_EXPERIMENT_STATUSES,
        {"status": status, "traffic_b": 0.0, "ended_at": now, "next_step_at": None,
         "result": {**experiment.result, **analysis.jsonable(document), "status": status, "reason": reason}},
        [store.audit_event(experiment.model_name, action, version_id=experiment.version_b,
                           actor=actor, reason=reason, details={"experiment_id": experiment.id,
                                                               "step": experiment.step})])
    notifier.send_rollout_rollback(experiment.model_name, experiment.id, experiment.version_b,
                                   experiment.version_a, reason)
    log.warning("rollout %s %s: %s", experiment.id, status, reason)
    return rollout_entry(updated, status, reason)


def _complete(ws: Workspace, experiment: Experiment, now: datetime,
              notifier: NotificationService, actor: str | None = None) -> dict[str, Any]:
    """Promote the candidate and close the rollout in one registry transaction (notice
    before, notice after). The rollout is closed only if it is still running at the step
    this run saw: when it was aborted, paused or advanced meanwhile, nothing changes and
    RegistryError says so."""
    registry, model = ws.registry, experiment.model_name
    reason = f"{experiment.strategy} rollout {experiment.id} reached 100%"
    last = len(experiment.schedule)

    def close(session) -> None:
        store.change_in(
            session, experiment.id, ("running",),
            {"status": "completed", "traffic_b": 1.0, "step": last, "ended_at": now,
             "next_step_at": None, "result": {**experiment.result, "status": "completed"}},
            [store.audit_event(model, "rollout-completed", version_id=experiment.version_b,
                               actor=actor, reason=reason, details={"experiment_id": experiment.id})],
            expected_step=experiment.step)

    production = registry.production_version(model)
    if production is not None and production.version_id == experiment.version_b:
        with registry.transaction(model) as session:  # promoted already: only close it
            close(session)
    else:
        change = ProductionChange(
            model, experiment.version_b, "promotion", reason, actor=actor,
            expected_production=experiment.version_a, allow_rejected=True,
            details={"experiment_id": experiment.id, "strategy": experiment.strategy},
            closing=experiment.id, close=close)
        try:
            switched = change_production(ws, change, notifier)
        except RegistryError as exc:
            current = store.get_experiment(registry, experiment.id)
            if current.status != "running" or current.step != experiment.step:
                raise RegistryError(f"{experiment.id} changed meanwhile ({current.status}, step "
                                    f"{current.step}); {experiment.version_b} was not "
                                    "promoted") from None
            return end_rollout(ws, experiment, f"cannot promote at 100%: {exc}", now, notifier,
                               status="stopped", action="rollout-stopped", actor=actor)
        if switched.outcome == "undone":  # the smoke check failed: production is back
            log.error("rollout %s: %s", experiment.id, switched.reason)
            undone = store.change_experiment(
                registry, experiment.id, ("completed",),
                {"status": "rolled-back", "traffic_b": 0.0,
                 "result": {**experiment.result, "status": "rolled-back", "reason": switched.reason}},
                [store.audit_event(model, "rollout-rolled-back", version_id=experiment.version_b,
                                   actor=actor, reason=switched.reason,
                                   details={"experiment_id": experiment.id})])
            return rollout_entry(undone, "rolled-back", switched.reason)
    updated = store.get_experiment(registry, experiment.id)
    log.info("rollout %s completed: %s is production", experiment.id, experiment.version_b)
    return rollout_entry(updated, "completed", reason)
