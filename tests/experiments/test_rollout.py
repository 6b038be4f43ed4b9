"""Rollouts: schedules, guarded steps, rollback on a breach, promotion at 100%, and the
controls (pause, resume, abort)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlmodel import select

from retrain.errors import ConfigError, RegistryError
from retrain.experiments import (RolloutStrategy, abort_rollout, advance_rollouts, build_schedule,
                                 pause_rollout, resume_rollout, rollout_status)
from retrain.registry.tables import Notification
from abtest import MODEL, set_salt, simulate

T0 = datetime(2026, 4, 1, 9, 0)


def schedule_of(strategy, **kwargs):
    return [(s["step"], s["traffic_percentage"], s["delay_hours"])
            for s in build_schedule(strategy, **kwargs)]


def notifications(ws) -> list[str]:
    with ws.registry.reading() as s:
        return [n.kind for n in s.exec(select(Notification).order_by(Notification.id))]


# Schedules ----------------------------------------------------------------------------------

def test_canary_starts_small_then_adds_the_increment_until_100():
    assert schedule_of(RolloutStrategy.CANARY, initial_traffic=0.1, increment=0.2,
                       interval_hours=24) == [
        (1, 10, 0), (2, 30, 24), (3, 50, 48), (4, 70, 72), (5, 90, 96), (6, 100, 120)]
    assert schedule_of("canary", initial_traffic=0.05, increment=0.5, interval_hours=6) == [
        (1, 5, 0), (2, 55, 6), (3, 100, 12)]


def test_gradual_takes_equal_steps_and_immediate_one():
    assert schedule_of(RolloutStrategy.GRADUAL, steps=4, interval_hours=12) == [
        (1, 25, 0), (2, 50, 12), (3, 75, 24), (4, 100, 36)]
    assert [p for _, p, _ in schedule_of("gradual", steps=3)] == [33.333333, 66.666667, 100]
    assert schedule_of(RolloutStrategy.IMMEDIATE) == [(1, 100, 0)]


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "blue-green"}, "unknown rollout strategy 'blue-green'"),
    ({"strategy": "canary", "initial_traffic": 0}, "initial_traffic"),
    ({"strategy": "canary", "increment": 1.5}, "increment"),
    ({"strategy": "canary", "interval_hours": 0}, "increment_interval_hours"),
    ({"strategy": "gradual", "steps": 0}, "steps"),
])
def test_bad_schedules_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_schedule(**kwargs)


def test_the_seed_rollout_example_runs_with_our_version_ids(ab_workspace, monkeypatch, capsys):
    monkeypatch.chdir(ab_workspace.settings.base_dir)
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    code = '''\
from retrain import ABTestingManager, RolloutStrategy

ab_manager = ABTestingManager()

# Create gradual rollout plan
rollout = ab_manager.create_gradual_rollout(
    model_name='lightgbm',
    new_version='lightgbm-v2',
    strategy=RolloutStrategy.CANARY,
    initial_traffic=0.1,  # Start with 10%
    increment=0.2,  # Increase by 20% each step
    increment_interval_hours=24  # Every 24 hours
)

print(f"Rollout schedule: {len(rollout['schedule'])} steps")
for step in rollout['schedule']:
    print(f"Step {step['step']}: {step['traffic_percentage']}% after {step['delay_hours']}h")
'''
    exec(compile(code, "seed_rollout_example", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "Rollout schedule: 6 steps", "Step 1: 10% after 0h", "Step 2: 30% after 24h",
        "Step 3: 50% after 48h", "Step 4: 70% after 72h", "Step 5: 90% after 96h",
        "Step 6: 100% after 120h"]


# Starting -----------------------------------------------------------------------------------

def test_a_canary_starts_at_its_first_step(manager, ab_workspace):
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0)
    assert (rollout["rollout_id"], rollout["status"], rollout["traffic_percentage"]) == (
        "rollout-lightgbm-1", "running", 10)
    assert rollout["next_step_at"] == T0 + timedelta(hours=24)
    share = np.mean([manager.route(MODEL, f"k{i}").variant == "B" for i in range(20_000)])
    assert abs(share - 0.10) < 0.01
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert "rollout-started" in [e.action for e in ab_workspace.registry.history(MODEL)]
    assert "rollout_step" in notifications(ab_workspace)


def test_an_immediate_rollout_promotes_at_once(manager, ab_workspace):
    rollout = manager.create_gradual_rollout(MODEL, "v2", strategy=RolloutStrategy.IMMEDIATE)
    assert rollout["status"] == "completed"
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v2"
    assert manager.route(MODEL, "k").variant == "production"
    kinds = notifications(ab_workspace)
    assert kinds.index("pending_promotion") < kinds.index("promotion")


@pytest.mark.parametrize("args, error, message", [
    (("lightgbm-v1",), RegistryError, "already production"),
    (("lightgbm-v9",), RegistryError, "lightgbm-v9"),
    (("lightgbm-v2", "gradual", 0.1), ConfigError, "apply to canary"),
])
def test_bad_rollouts_are_refused(manager, args, error, message):
    with pytest.raises(error, match=message):
        manager.create_gradual_rollout(MODEL, *args)
    assert manager.advance_rollouts() == []


def test_a_rollout_and_an_ab_test_cannot_run_together(manager):
    manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3")
    with pytest.raises(RegistryError, match="already has an active A/B test"):
        manager.create_gradual_rollout(MODEL, "lightgbm-v2")


# Advancing ----------------------------------------------------------------------------------

def started(manager, ws, accuracy=None, n=2000, salt="rollout-salt", **kwargs):
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0, **kwargs)
    set_salt(ws, rollout["rollout_id"], salt)
    manager.refresh()
    if accuracy:
        simulate(manager, accuracy, n, np.random.default_rng(7), at=T0 + timedelta(hours=1))
    return rollout


def test_not_due_is_held(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85})
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=23))
    assert (entry["action"], entry["traffic_percentage"]) == ("held", 10)
    assert "due at 2026-04-02 09:00" in entry["reason"]


def test_due_and_healthy_moves_to_the_next_step_and_b_keys_stay_on_b(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85})
    on_b = {k for k in (f"k{i}" for i in range(5000)) if manager.route(MODEL, k).variant == "B"}
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert (entry["action"], entry["step"], entry["traffic_percentage"]) == ("advanced", 2, 30)
    assert entry["next_step_at"] == T0 + timedelta(hours=49)
    manager.refresh()
    now_b = {k for k in (f"k{i}" for i in range(5000)) if manager.route(MODEL, k).variant == "B"}
    assert on_b < now_b and abs(len(now_b) / 5000 - 0.3) < 0.03
    assert "rollout-step" in [e.action for e in ab_workspace.registry.history(MODEL)]


def test_a_due_step_waits_for_outcomes_unless_configured_not_to(manager, ab_workspace):
    started(manager, ab_workspace)
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert entry["action"] == "held" and "waiting for 100 outcomes" in entry["reason"]
    ab_workspace.settings.rollout.advance_without_outcomes = True
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert (entry["action"], entry["traffic_percentage"]) == ("advanced", 30)


def test_a_worse_candidate_is_rolled_back_to_zero_and_people_are_told(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.85, "B": 0.55})
    # The guardrail acts at every run, not only when a step is due.
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=2))
    assert entry["action"] == "rolled-back" and entry["traffic_percentage"] == 0
    assert "worse than lightgbm-v1 on accuracy" in entry["reason"]
    manager.refresh()
    assert manager.route(MODEL, "k1").variant == "production"
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert "rollout_rollback" in notifications(ab_workspace)
    assert "rollout-rolled-back" in [e.action for e in ab_workspace.registry.history(MODEL)]
    assert rollout_status(ab_workspace, MODEL)["status"] == "rolled-back"
    assert advance_rollouts(ab_workspace, now=T0 + timedelta(hours=30)) == []


def test_a_small_shortfall_within_tolerance_is_no_breach(manager, ab_workspace):
    ab_workspace.settings.rollout.guardrail_tolerance = 0.5
    started(manager, ab_workspace, {"A": 0.85, "B": 0.55})
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert entry["action"] == "advanced"


def test_a_broken_split_is_a_breach(manager, ab_workspace):
    rollout = started(manager, ab_workspace)
    manager.log_predictions([{"request_id": f"x{i}", "model_name": MODEL, "prediction": 1,
                              "variant": "B" if i % 2 else "A", "version_id": "v",
                              "experiment_id": rollout["rollout_id"], "at": T0 + timedelta(hours=1)}
                             for i in range(2000)])
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=3))
    assert entry["action"] == "rolled-back" and "sample ratio mismatch" in entry["reason"]


def test_the_last_step_promotes_the_candidate(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85})
    actions = [advance_rollouts(ab_workspace, now=T0 + timedelta(hours=24 * k + 1))[0]
               for k in range(1, 6)]
    assert [(a["action"], a["traffic_percentage"]) for a in actions] == [
        ("advanced", 30), ("advanced", 50), ("advanced", 70), ("advanced", 90), ("completed", 100)]
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v2"
    [promoted] = [e for e in ab_workspace.registry.history(MODEL) if e.action == "promoted"
                  and e.version_id == "lightgbm-v2"]
    assert promoted.details["experiment_id"] == "rollout-lightgbm-1"
    kinds = notifications(ab_workspace)
    assert kinds.index("pending_promotion") < kinds.index("promotion")
    manager.refresh()
    assert manager.route(MODEL, "k").version_id == "lightgbm-v2"
    assert rollout_status(ab_workspace, MODEL)["status"] == "completed"


def test_production_changed_meanwhile_stops_the_rollout(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85}, strategy="gradual", steps=2)
    # A promotion is refused while the rollout runs; a withdrawal still changes production.
    with pytest.raises(RegistryError, match="active rollout rollout-lightgbm-1"):
        ab_workspace.registry.promote("lightgbm-v3", reason="someone else")
    ab_workspace.registry.withdraw("lightgbm-v1", reason="someone else")
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert entry["action"] == "stopped" and "production of 'lightgbm' is none" in entry["reason"]
    assert ab_workspace.registry.production_version(MODEL) is None


# Controls -----------------------------------------------------------------------------------

def test_pause_holds_resume_restarts_the_clock_abort_goes_back_to_zero(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85})
    assert pause_rollout(ab_workspace, MODEL, reason="holiday")["action"] == "paused"
    with pytest.raises(RegistryError, match="is paused, not running"):
        pause_rollout(ab_workspace, MODEL)
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=30))
    assert (entry["action"], entry["traffic_percentage"]) == ("paused", 10)
    manager.refresh()
    assert {manager.route(MODEL, f"k{i}").variant for i in range(100)} == {"A", "B"}  # split kept
    resumed = resume_rollout(ab_workspace, MODEL, now=T0 + timedelta(hours=30))
    assert resumed["next_step_at"] == T0 + timedelta(hours=54)
    assert advance_rollouts(ab_workspace, now=T0 + timedelta(hours=31))[0]["action"] == "held"
    aborted = abort_rollout(ab_workspace, MODEL, reason="changed our minds")
    assert (aborted["action"], aborted["traffic_percentage"]) == ("stopped", 0)
    manager.refresh()
    assert manager.route(MODEL, "k1").variant == "production"
    actions = [e.action for e in ab_workspace.registry.history(MODEL)]
    assert {"rollout-paused", "rollout-resumed", "rollout-aborted"} <= set(actions)
    with pytest.raises(RegistryError, match="has no active rollout"):
        abort_rollout(ab_workspace, MODEL)


def test_status_shows_the_step_schedule_and_guardrail(manager, ab_workspace):
    started(manager, ab_workspace, {"A": 0.8, "B": 0.85})
    status = rollout_status(ab_workspace, MODEL)
    assert (status["status"], status["step"], status["steps"], status["traffic_percentage"]) == (
        "running", 1, 6, 10)
    assert status["guardrail"]["breach"] is None and status["guardrail"]["enough_outcomes"]
    assert status["variants"]["B"]["requests"] > 100
    assert manager.check_test_status(status["rollout_id"])["rollout_id"] == status["rollout_id"]
    with pytest.raises(RegistryError, match="no registered model or rollout 'nope'"):
        rollout_status(ab_workspace, "nope")
