"""Production and live experiments stay consistent: promote refuses while an A/B test or rollout
routes the traffic, rollback ends it, an experiment's own promotion and its end are one
transaction, status checks only ever add to what is stored, outcomes belong to the experiment
that served them, and the guardrail watches paused rollouts too."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest

from retrain.errors import RegistryError
from retrain.experiments import advance_rollouts, analysis, pause_rollout, store
from retrain.reporting.experiments import status_text
from retrain.experiments.rollout_control import abort_rollout
from retrain.promotion import Approval, apply_decision, rollback_model
from retrain.registry.tables import Experiment
from retrain.stats.sequential import ArmSummary, msprt
from retrain.evaluation.results import Evaluation, MetricPair
from retrain.evaluation.smoke import recorded_smoke_sample
from retrain.notify.outbox import Outbox
from abtest import MODEL, set_salt, simulate
from smoke_samples import tamper_smoke_sample

T0 = datetime(2026, 4, 1, 9, 0)


def start(manager, kind: str) -> str:
    if kind == "ab_test":
        return manager.create_ab_test(MODEL, "production", "lightgbm-v2", traffic_split=0.5,
                                      now=T0)["test_id"]
    return manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0)["rollout_id"]


def served(manager, n: int = 200) -> set[str]:
    manager.refresh()
    return {manager.route(MODEL, f"k{i}").version_id for i in range(n)}


def actions(registry) -> list[str]:
    return [e.action for e in registry.history(MODEL)]


# Finding 1: manual promote and rollback during an experiment ------------------------------------

@pytest.mark.parametrize("kind, how_to_end", [
    ("ab_test", "retrain ab end ab-lightgbm-1"), ("rollout", "retrain rollout abort lightgbm")])
def test_promote_is_refused_while_an_experiment_routes_the_traffic(manager, ab_workspace, kind,
                                                                   how_to_end):
    experiment_id = start(manager, kind)
    registry = ab_workspace.registry
    with pytest.raises(RegistryError) as refused:
        registry.promote("lightgbm-v3", reason="someone changes production by hand")
    assert experiment_id in str(refused.value) and how_to_end in str(refused.value)
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert registry.get_version("lightgbm-v3").status == "candidate"
    assert "promoted" not in actions(registry)[-2:]
    assert store.get_experiment(registry, experiment_id).status == "running"


@pytest.mark.parametrize("kind, ended_action", [("ab_test", "ab-test-ended"),
                                                ("rollout", "rollout-aborted")])
def test_rollback_during_an_experiment_ends_it_so_the_restored_version_is_served(
        manager, ab_workspace, kind, ended_action):
    registry = ab_workspace.registry
    registry.promote("lightgbm-v3", reason="v3 goes live")  # v1 becomes an earlier production
    experiment_id = manager.create_ab_test(MODEL, "production", "lightgbm-v2", traffic_split=0.5,
                                           now=T0)["test_id"] if kind == "ab_test" else \
        manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0)["rollout_id"]
    assert served(manager) == {"lightgbm-v3", "lightgbm-v2"}

    result = rollback_model(ab_workspace, MODEL, reason="v3 is broken")

    assert result["production_version"] == "lightgbm-v1"
    experiment = store.get_experiment(registry, experiment_id)
    assert (experiment.status, experiment.traffic_b) == ("stopped", 0.0)
    assert experiment.ended_at is not None
    assert result["ended_experiment"] == experiment_id and experiment_id in result["reason"]
    [ended] = [e for e in registry.history(MODEL) if e.action == ended_action]
    assert ended.reason == f"{experiment_id} ended by the rollback to lightgbm-v1"
    assert served(manager) == {"lightgbm-v1"}
    assert advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25)) == []
    # The ended experiment still reports and prints.
    document = manager.check_test_status(experiment_id)
    assert (document["status"], document["test_id"]) == ("stopped", experiment_id)
    assert "STOPPED" in status_text(document)


def test_a_canary_does_not_advance_after_a_rollback(manager, ab_workspace):
    """The reviewer's case: a person rolls back during a canary; the canary must not keep
    routing to the old versions and advance as if nothing happened."""
    registry = ab_workspace.registry
    registry.promote("lightgbm-v3", reason="v3 goes live")
    manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0)
    ab_workspace.settings.rollout.advance_without_outcomes = True
    registry.rollback(MODEL, reason="emergency: v3 is broken")
    assert advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25)) == []
    assert served(manager) == {"lightgbm-v1"}


def evaluation(candidate: str) -> dict:
    return {"model": MODEL, "candidate_version": candidate, "production_version": "lightgbm-v1",
            "metric": "roc_auc", "relative_improvement": 0.5,
            "metrics": {"candidate": {"roc_auc": 0.9}, "production": {"roc_auc": 0.6}},
            "interval": None, "guardrails": {}, "smoke_sample": None}


def test_an_experiment_started_while_approval_was_pending_defers_the_promotion(manager,
                                                                               ab_workspace):
    ab_workspace.settings.promotion.require_approval = True
    started = {}

    def approver(evaluation, reason):  # approval takes hours; meanwhile a test starts
        # Asked is recorded first, so the waiting candidate never looks abandoned.
        assert actions(ab_workspace.registry)[-1] == "approval-requested"
        started["id"] = manager.create_ab_test(MODEL, "production", "lightgbm-v2",
                                               traffic_split=0.5)["test_id"]
        return Approval(approved=True, actor="alice")

    decision = apply_decision(ab_workspace, evaluation("lightgbm-v3"), approver=approver)
    assert decision.decision == "awaiting-experiment", decision
    assert decision.experiment_id == started["id"] and started["id"] in decision.reason
    registry = ab_workspace.registry
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert actions(registry)[-4:] == ["approval-requested", "ab-test-created", "approved",
                                      "awaiting-experiment"]


def test_an_experiment_started_just_before_the_switch_defers_the_promotion(manager, ab_workspace,
                                                                           monkeypatch):
    import retrain.promotion.switch as switch
    test_id = start(manager, "ab_test")
    # The experiment starts after the switch's own guard, right before the registry switch:
    # the registry refuses in the switch's transaction.
    monkeypatch.setattr(switch, "active_experiment", lambda registry, model: None)
    decision = apply_decision(ab_workspace, evaluation("lightgbm-v3"))
    assert decision.decision == "awaiting-experiment", decision
    assert decision.experiment_id == test_id
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v1"


# Finding 4: overlapping status checks ------------------------------------------------------------

def test_a_slower_overlapping_status_check_keeps_the_declared_winner(manager, ab_workspace,
                                                                    monkeypatch):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5,
                                  duration_days=14, now=T0)
    set_salt(ab_workspace, test["test_id"], "s1")
    manager.refresh()
    rng = np.random.default_rng(1)
    simulate(manager, {"A": 0.7, "B": 0.7}, 400, rng, at=T0)
    stale = store.get_experiment(ab_workspace.registry, test["test_id"])  # a slow check reads
    simulate(manager, {"A": 0.60, "B": 0.85}, 4000, rng, start=400, at=T0)
    fast = manager.check_test_status(test["test_id"], now=T0 + timedelta(hours=1))
    assert fast["winner"] == "B"
    declared = store.get_experiment(ab_workspace.registry, test["test_id"])

    # The slow check aggregated only the first 400 requests, and writes after the fast one.
    def old_look(registry, experiment, config, srm_since=None):
        arm = ArmSummary(200, 0.7, 0.21)
        return analysis.Look(requests={"A": 200, "B": 200}, outcomes={"A": 200, "B": 200},
                             means={"A": 0.7, "B": 0.7}, result=msprt(arm, arm), srm=None,
                             srm_share_b=None, enough=True)
    import retrain.experiments.manager as manager_module
    monkeypatch.setattr(manager_module.store, "get_experiment", lambda registry, i: stale)
    monkeypatch.setattr(analysis, "take_look", old_look)
    slow = manager.check_test_status(test["test_id"], now=T0 + timedelta(hours=1))
    monkeypatch.undo()

    after = store.get_experiment(ab_workspace.registry, test["test_id"])
    assert after.winner == "B"
    assert after.best_p_value == declared.best_p_value  # the running minimum never goes up
    assert (slow["winner"], slow["status"]) == ("B", "significant")
    winners = [e for e in ab_workspace.registry.history(MODEL) if e.action == "ab-test-winner"]
    assert len(winners) == 1


# Finding 5: promotion and the end of the experiment are one transaction ------------------------

def test_an_abort_racing_the_rollouts_completion_leaves_production_unchanged(manager,
                                                                              ab_workspace,
                                                                              monkeypatch):
    registry = ab_workspace.registry
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", strategy="gradual", steps=2,
                                             now=T0)
    ab_workspace.settings.rollout.advance_without_outcomes = True
    original = registry.promote

    def abort_then_promote(*args, **kwargs):  # a person aborts while the completion runs
        abort_rollout(ab_workspace, MODEL, reason="person aborts now")
        return original(*args, **kwargs)

    monkeypatch.setattr(registry, "promote", abort_then_promote)
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    monkeypatch.undo()
    assert store.get_experiment(registry, rollout["rollout_id"]).status == "stopped"
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert registry.get_version("lightgbm-v2").status == "candidate"
    assert entry["action"] == "failed" and "lightgbm-v2 was not promoted" in entry["reason"]
    assert "promoted" not in actions(registry)[-3:]


def test_a_completed_rollout_is_promoted_and_closed_together(manager, ab_workspace):
    registry = ab_workspace.registry
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", strategy="gradual", steps=2,
                                             now=T0)
    ab_workspace.settings.rollout.advance_without_outcomes = True
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert entry["action"] == "completed"
    assert store.get_experiment(registry, rollout["rollout_id"]).status == "completed"
    assert registry.production_version(MODEL).version_id == "lightgbm-v2"
    assert actions(registry)[-3:] == ["archived", "promoted", "rollout-completed"]


def test_ending_a_test_that_was_ended_meanwhile_promotes_nothing(manager, ab_workspace,
                                                                monkeypatch):
    registry = ab_workspace.registry
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5,
                                  duration_days=14, now=T0)
    set_salt(ab_workspace, test["test_id"], "s1")
    manager.refresh()
    simulate(manager, {"A": 0.60, "B": 0.85}, 4000, np.random.default_rng(1), at=T0)
    original = registry.promote

    def end_then_promote(*args, **kwargs):  # another person ends it without promoting
        store.change_experiment(registry, test["test_id"], ("running", "paused"),
                                {"status": "stopped", "ended_at": T0})
        return original(*args, **kwargs)

    monkeypatch.setattr(registry, "promote", end_then_promote)
    with pytest.raises(RegistryError) as refused:
        manager.end_test(test["test_id"], now=T0 + timedelta(days=1))
    monkeypatch.undo()
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert store.get_experiment(registry, test["test_id"]).status == "stopped"
    assert "was ended meanwhile (stopped); lightgbm-v2 was not promoted" in str(refused.value)


def run_a_test_that_b_wins(manager, ab_workspace) -> tuple[dict, dict]:
    """An A/B test of v1 against v2 in which v2 is clearly better, ended a day later."""
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5,
                                  duration_days=14, now=T0)
    set_salt(ab_workspace, test["test_id"], "s1")
    manager.refresh()
    simulate(manager, {"A": 0.60, "B": 0.85}, 4000, np.random.default_rng(1), at=T0)
    return test, manager.end_test(test["test_id"], now=T0 + timedelta(days=1))


def test_an_ab_tests_winner_is_promoted_as_the_test_ends(manager, ab_workspace):
    registry = ab_workspace.registry
    test, result = run_a_test_that_b_wins(manager, ab_workspace)
    assert (result["status"], result["promoted"]) == ("significant", "lightgbm-v2")
    assert registry.production_version(MODEL).version_id == "lightgbm-v2"
    assert actions(registry)[-3:] == ["archived", "promoted", "ab-test-ended"]


def fails_its_smoke_check(ws, version_id: str) -> None:
    """Record an evaluation of ``version_id`` whose smoke sample its artifact does not
    reproduce (v1's sample, copied and halved), as a deployed artifact that does not predict
    what was evaluated would look."""
    sample = recorded_smoke_sample(ws.registry, f"{MODEL}-v1")
    copy = sample.path.replace(f"{MODEL}-v1", version_id)
    assert copy != sample.path
    shutil.copyfile(ws.registry.artifacts_dir / sample.path, ws.registry.artifacts_dir / copy)
    tampered = tamper_smoke_sample(ws, Evaluation(
        model=MODEL, candidate_version=version_id, metric="roc_auc", metrics=MetricPair(),
        smoke_sample=sample.model_copy(update={"path": copy})))
    ws.registry.record(MODEL, "evaluated", version_id=version_id, reason="copied from v1",
                       details={"smoke_sample": tampered.smoke_sample.to_dict()})


def test_an_ab_test_winner_that_fails_its_smoke_check_is_not_reported_promoted(manager,
                                                                             ab_workspace):
    registry = ab_workspace.registry
    fails_its_smoke_check(ab_workspace, "lightgbm-v2")
    test, result = run_a_test_that_b_wins(manager, ab_workspace)
    assert (result["winner_version"], result["promoted"]) == ("lightgbm-v2", None)
    assert "smoke check after promotion failed" in result["summary"]["promotion_undone"]
    assert result["production_version"] == "lightgbm-v1"
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    stored = store.get_experiment(registry, test["test_id"])
    assert stored.status == "significant" and stored.result["promoted"] is None
    notices = Outbox(registry, ab_workspace.settings.notifications).messages()
    summary = [m for m in notices if m.kind == "ab_test_result"][-1]  # the one as it ended
    assert summary.payload["status"] == "significant"
    assert summary.payload["promoted"] is None and "was promoted" not in summary.body_text


def test_a_rollout_that_fails_its_smoke_check_at_100_percent_is_rolled_back(manager,
                                                                           ab_workspace):
    registry = ab_workspace.registry
    fails_its_smoke_check(ab_workspace, "lightgbm-v2")
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", strategy="gradual", steps=2,
                                             now=T0)
    ab_workspace.settings.rollout.advance_without_outcomes = True
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=25))
    assert entry["action"] == "rolled-back" and "smoke check" in entry["reason"]
    stored = store.get_experiment(registry, rollout["rollout_id"])
    assert (stored.status, stored.traffic_b) == ("rolled-back", 0.0)
    assert registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert actions(registry)[-6:] == ["archived", "promoted", "rollout-completed", "archived",
                                      "rolled-back", "rollout-rolled-back"]


# Finding 6: outcomes belong to the experiment that served the request ----------------------------

def test_feedback_sent_before_the_prediction_does_not_count(manager, ab_workspace):
    registry = ab_workspace.registry
    first = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5, now=T0)
    rows = [{"request_id": f"order-{i}", "model_name": MODEL, "version_id": "lightgbm-v1",
             "variant": "A", "experiment_id": first["test_id"], "prediction": 1.0,
             "probability": 0.9, "at": T0} for i in range(50)]
    manager.log_predictions(rows)
    manager.log_feedback([{"request_id": f"order-{i}", "label": 1.0, "at": T0} for i in range(50)])
    manager.end_test(first["test_id"], promote_winner=False, now=T0 + timedelta(days=1))
    second = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3", traffic_split=0.5,
                                    now=T0 + timedelta(days=2))
    later = T0 + timedelta(days=3)
    manager.log_predictions([{**r, "experiment_id": second["test_id"], "at": later, "variant": "B",
                              "version_id": "lightgbm-v3"} for r in rows])
    assert store.outcome_sums(registry, second["test_id"], "accuracy")["B"][0] == 0
    assert store.outcome_sums(registry, first["test_id"], "accuracy")["A"][0] == 50
    # Feedback sent after the second prediction counts for the second test.
    manager.log_feedback([{"request_id": f"order-{i}", "label": 0.0, "at": later}
                          for i in range(10)])
    assert store.outcome_sums(registry, second["test_id"], "accuracy")["B"] == (10, 0.0, 0.0)


def test_a_request_predicted_twice_in_a_test_counts_once(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5, now=T0)
    base = {"model_name": MODEL, "experiment_id": test["test_id"], "probability": 0.9}
    manager.log_predictions(
        [{**base, "request_id": "r-1", "version_id": "lightgbm-v1", "variant": "A",
          "prediction": 1.0, "at": T0},
         {**base, "request_id": "r-2", "version_id": "lightgbm-v2", "variant": "B",
          "prediction": 0.0, "at": T0},
         # retries of the same requests, later (r-1 after a step moved it to B)
         {**base, "request_id": "r-1", "version_id": "lightgbm-v2", "variant": "B",
          "prediction": 0.0, "at": T0 + timedelta(minutes=5)},
         {**base, "request_id": "r-2", "version_id": "lightgbm-v2", "variant": "B",
          "prediction": 0.0, "at": T0 + timedelta(minutes=1)}])
    manager.log_feedback([{"request_id": r, "label": 1.0, "at": T0 + timedelta(hours=1)}
                          for r in ("r-1", "r-2")])
    sums = store.outcome_sums(ab_workspace.registry, test["test_id"], "accuracy")
    assert sums == {"A": (1, 1.0, 1.0), "B": (1, 0.0, 0.0)}


# Finding 7: the guardrail watches paused rollouts ------------------------------------------------

def test_a_paused_rollout_is_still_rolled_back_on_a_guardrail_breach(manager, ab_workspace):
    rollout = manager.create_gradual_rollout(MODEL, "lightgbm-v2", now=T0)
    set_salt(ab_workspace, rollout["rollout_id"], "rollout-salt")
    manager.refresh()
    pause_rollout(ab_workspace, MODEL, reason="holiday")
    simulate(manager, {"A": 0.85, "B": 0.30}, 3000, np.random.default_rng(7),
             at=T0 + timedelta(hours=1))
    [entry] = advance_rollouts(ab_workspace, now=T0 + timedelta(hours=2))
    assert (entry["action"], entry["traffic_percentage"]) == ("rolled-back", 0)
    assert "worse than lightgbm-v1" in entry["reason"]
    with ab_workspace.registry.reading() as s:
        assert s.get(Experiment, rollout["rollout_id"]).status == "rolled-back"
    assert served(manager) == {"lightgbm-v1"}


def test_an_experiment_onto_a_broken_artifact_is_refused(manager, ab_workspace):
    path = ab_workspace.registry.artifact_file(ab_workspace.registry.get_version("lightgbm-v2"))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RegistryError, match="sha256"):
        manager.create_ab_test(MODEL, "production", "lightgbm-v2", traffic_split=0.5)
    with pytest.raises(RegistryError, match="sha256"):
        manager.create_gradual_rollout(MODEL, "lightgbm-v2")
    assert manager.list_tests(MODEL) == [] and store.list_experiments(ab_workspace.registry) == []
