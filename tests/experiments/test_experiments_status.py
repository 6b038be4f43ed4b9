"""A/B test status from the prediction log and feedback: per-variant metrics aggregated in SQL,
the always-valid test, the SRM check, winners, ending a test and promoting its winner."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlmodel import select

from retrain.errors import RegistryError
from retrain.experiments import ABTestingManager
from retrain.registry.tables import Experiment, Notification
from abtest import MODEL, START, set_salt, simulate


def test_a_truly_better_b_wins_and_end_test_promotes_it(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5,
                                  duration_days=14, now=START)
    set_salt(ab_workspace, test["test_id"], "fixed-salt-1")
    manager.refresh()
    rng = np.random.default_rng(1)
    simulate(manager, {"A": 0.70, "B": 0.80}, 4000, rng)
    status = manager.check_test_status(test["test_id"], now=START + timedelta(days=1))
    assert status["status"] == "significant"
    assert (status["winner"], status["winner_version"]) == ("B", "lightgbm-v2")
    a, b = status["variants"]["A"], status["variants"]["B"]
    assert a["requests"] + b["requests"] == 4000 and a["outcomes"] == a["requests"]
    assert 0.67 < a["metric"] < 0.73 and 0.77 < b["metric"] < 0.83
    assert status["lift"] == pytest.approx(b["metric"] - a["metric"])
    assert status["ci_low"] > 0 and status["p_value"] <= 0.05 and not status["srm"]["mismatch"]
    with ab_workspace.registry.reading() as s:
        stored = s.get(Experiment, test["test_id"])
    assert (stored.winner, stored.best_p_value) == ("B", status["p_value"])

    result = manager.end_test(test["test_id"], promote_winner=True, now=START + timedelta(days=2))
    assert (result["status"], result["winner"], result["promoted"]) == (
        "significant", "B", "lightgbm-v2")
    registry = ab_workspace.registry
    assert registry.production_version(MODEL).version_id == "lightgbm-v2"
    actions = [(e.action, e.version_id) for e in registry.history(MODEL)]
    assert ("ab-test-winner", "lightgbm-v2") in actions
    assert ("ab-test-ended", "lightgbm-v2") in actions
    [promoted] = [e for e in registry.history(MODEL) if e.action == "promoted" and e.version_id == "lightgbm-v2"]
    assert promoted.details["experiment_id"] == test["test_id"]
    assert promoted.details["previous_version"] == "lightgbm-v1"
    with registry.reading() as s:
        kinds = [n.kind for n in s.exec(select(Notification).order_by(Notification.id))]
    # The notice goes out before production changes, the promotion notice after.
    assert kinds.index("pending_promotion") < kinds.index("promotion")
    assert "ab_test_result" in kinds
    # Ended: all traffic to the new production version; the status is frozen.
    assert manager.route(MODEL, "r-1").variant == "production"
    assert manager.route(MODEL, "r-1").version_id == "lightgbm-v2"
    assert manager.check_test_status(test["test_id"])["status"] == "significant"
    with pytest.raises(RegistryError, match="already ended"):
        manager.end_test(test["test_id"])


def test_a_better_a_wins_and_production_stays(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", now=START)
    set_salt(ab_workspace, test["test_id"], "fixed-salt-2")
    manager.refresh()
    simulate(manager, {"A": 0.80, "B": 0.68}, 3000, np.random.default_rng(2))
    result = manager.end_test(test["test_id"], now=START + timedelta(days=3))
    assert (result["winner"], result["promoted"], result["production_version"]) == (
        "A", None, "lightgbm-v1")


# Twelve seeds: a fixed-horizon z-test peeked at like this declares a false winner for two of
# them (seeds 8 and 9), so the test tells an always-valid p-value from a naive one.
@pytest.mark.parametrize("seed", range(12))
def test_an_a_a_test_checked_after_every_batch_declares_no_winner(manager, ab_workspace, seed):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", now=START)
    set_salt(ab_workspace, test["test_id"], f"a-a-{seed}")
    manager.refresh()
    rng = np.random.default_rng(100 + seed)
    for batch in range(30):
        simulate(manager, {"A": 0.75, "B": 0.75}, 200, rng, start=200 * batch)
        status = manager.check_test_status(test["test_id"], now=START + timedelta(hours=batch))
        assert status["winner"] is None, f"false winner at batch {batch}: {status}"
        assert status["status"] == "running"
    assert status["p_value"] is not None  # the test did look (enough outcomes)


def test_a_52_48_split_configured_as_50_50_is_flagged_and_wins_nothing(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5, now=START)
    rng = np.random.default_rng(3)
    rows, feedback = [], []
    for i in range(20_000):
        variant = "B" if i < 10_400 else "A"
        correct = rng.random() < (0.9 if variant == "B" else 0.6)  # B "wins" by a mile
        rows.append({"request_id": f"s-{i}", "model_name": MODEL, "variant": variant,
                     "version_id": f"lightgbm-v{2 if variant == 'B' else 1}",
                     "experiment_id": test["test_id"], "prediction": 1.0})
        feedback.append({"request_id": f"s-{i}", "label": float(correct)})
    manager.log_predictions(rows)
    manager.log_feedback(feedback)
    status = manager.check_test_status(test["test_id"], now=START + timedelta(days=1))
    assert status["srm"]["mismatch"] and status["srm"]["p_value"] < 0.001
    assert status["srm"]["observed"] == [9600, 10400]
    assert (status["status"], status["winner"]) == ("running", None)
    assert any("sample ratio mismatch" in w for w in status["warnings"])
    result = manager.end_test(test["test_id"], now=START + timedelta(days=2))
    assert (result["status"], result["promoted"]) == ("stopped", None)


def test_a_50_50_split_passes_the_srm_check(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", now=START)
    simulate(manager, {"A": 0.7, "B": 0.7}, 20_000, np.random.default_rng(4))
    status = manager.check_test_status(test["test_id"])
    assert not status["srm"]["mismatch"] and status["warnings"] == []


def test_expired_then_inconclusive_and_stopped_early(manager, ab_workspace):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", duration_days=1, now=START)
    assert manager.check_test_status(test["test_id"], now=START)["status"] == "running"
    assert manager.check_test_status(test["test_id"], now=START + timedelta(days=2))["status"] == "expired"
    # Expired tests keep their split until someone ends them.
    assert {manager.route(MODEL, f"k{i}").variant for i in range(40)} == {"A", "B"}
    ended = manager.end_test(test["test_id"], now=START + timedelta(days=2))
    assert ended["status"] == "inconclusive" and ended["promoted"] is None
    second = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v3", duration_days=5, now=START)
    assert manager.end_test(second["test_id"], now=START + timedelta(days=1))["status"] == "stopped"


def test_too_few_outcomes_never_win(manager, ab_workspace):
    ab_workspace.settings.abtest.min_outcomes = 500
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", now=START)
    set_salt(ab_workspace, test["test_id"], "few")
    manager.refresh()
    simulate(manager, {"A": 0.5, "B": 0.95}, 600, np.random.default_rng(5))
    status = manager.check_test_status(test["test_id"])
    assert status["winner"] is None and any("fewer than 500" in w for w in status["warnings"])


@pytest.mark.parametrize("metric", ["accuracy", "brier", "log_loss", "reward"])
def test_the_sql_metric_matches_numpy_and_uses_the_latest_feedback(manager, ab_workspace, metric):
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", metric=metric)
    rng = np.random.default_rng(6)
    n = 400
    proba = rng.uniform(0, 1, n)
    proba[:3] = [0.0, 1.0, 0.5]  # log loss clips like retrain.stats.metrics
    labels = (rng.random(n) < proba).astype(float)
    rewards = rng.normal(1.0, 0.3, n)
    variants = ["A" if i % 3 else "B" for i in range(n)]
    manager.log_predictions([{"request_id": f"m-{i}", "model_name": MODEL, "variant": variants[i],
                              "version_id": "x", "experiment_id": test["test_id"],
                              "prediction": float(proba[i] >= 0.5), "probability": proba[i]}
                             for i in range(n)])
    # A wrong first answer for every request, then the correction: only the latest counts.
    manager.log_feedback([{"request_id": f"m-{i}", "label": 1 - labels[i], "reward": -5.0}
                          for i in range(n)])
    manager.log_feedback([{"request_id": f"m-{i}", "label": labels[i], "reward": rewards[i]}
                          for i in range(n)])
    manager.log_feedback([{"request_id": "m-0", "label": 1 - labels[0], "model_name": "other"}])
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    per_request = {
        "accuracy": ((proba >= 0.5).astype(float) == labels).astype(float),
        "brier": (proba - labels) ** 2,
        "log_loss": -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)),
        "reward": rewards}[metric]
    status = manager.check_test_status(test["test_id"])
    for variant in ("A", "B"):
        mask = np.array([v == variant for v in variants])
        assert status["variants"][variant]["outcomes"] == mask.sum()
        assert status["variants"][variant]["metric"] == pytest.approx(per_request[mask].mean())
    assert status["higher_is_better"] is (metric in ("accuracy", "reward"))


def test_the_seed_ab_example_runs_with_our_version_ids(ab_workspace, monkeypatch, capsys):
    monkeypatch.chdir(ab_workspace.settings.base_dir)
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    code = '''\
from retrain import ABTestingManager

# Initialize A/B testing manager
ab_manager = ABTestingManager()

# Create A/B test
test = ab_manager.create_ab_test(
    model_name='lightgbm',
    version_a='lightgbm-v1',
    version_b='lightgbm-v2',
    traffic_split=0.5,  # 50% to each version
    duration_days=7
)

# Route predictions
version_id, variant = ab_manager.route_prediction(
    model_name='lightgbm',
    request_id='user_123_request_456'
)

# Check test status
status = ab_manager.check_test_status(test['test_id'])
print(f"Test status: {status['status']}")
print(f"Winner: {status['winner']}")

# End test and promote winner
result = ab_manager.end_test(test['test_id'], promote_winner=True)
'''
    exec(compile(code, "seed_ab_example", "exec"), {})
    out = capsys.readouterr().out
    assert "Test status: running" in out and "Winner: None" in out
    [test] = ABTestingManager(workspace=ab_workspace).list_tests()
    assert test.status == "stopped"
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v1"


def test_a_version_rejected_offline_can_win_live_and_is_promoted_with_an_override(
        manager, ab_workspace):
    ab_workspace.registry.reject("lightgbm-v2", reason="not 5% better on the holdout")
    test = manager.create_ab_test(MODEL, "production", "lightgbm-v2", now=START)
    set_salt(ab_workspace, test["test_id"], "rejected-wins")
    manager.refresh()
    simulate(manager, {"A": 0.70, "B": 0.80}, 4000, np.random.default_rng(8))
    result = manager.end_test(test["test_id"], now=START + timedelta(days=1))
    assert result["promoted"] == "lightgbm-v2"
    [promoted] = [e for e in ab_workspace.registry.history(MODEL)
                  if e.action == "promoted" and e.version_id == "lightgbm-v2"]
    assert promoted.details["override"] is True
    assert promoted.details["experiment_id"] == test["test_id"]


def test_retried_requests_count_once_in_the_split_check(manager, ab_workspace):
    """A client that retries every request of one variant three times must not look like a
    broken split: the SRM check counts distinct requests."""
    from retrain.experiments import store
    test = manager.create_ab_test(MODEL, "lightgbm-v1", "lightgbm-v2", traffic_split=0.5, now=START)
    set_salt(ab_workspace, test["test_id"], "fixed-salt-1")
    manager.refresh()
    simulate(manager, {"A": 0.8, "B": 0.8}, 4000, np.random.default_rng(7))
    retries = []
    for i in range(4000):
        route = manager.route(MODEL, f"r-{i}")
        if route.variant == "B":
            retries += [{"request_id": f"r-{i}", "model_name": MODEL, "version_id": route.version_id,
                         "variant": "B", "experiment_id": route.experiment_id, "prediction": 1.0,
                         "probability": 0.7, "at": START}] * 2
    manager.log_predictions(retries)
    counts = store.request_counts(ab_workspace.registry, test["test_id"])
    assert counts["A"] + counts["B"] == 4000
    status = manager.check_test_status(test["test_id"], now=START + timedelta(days=1))
    assert not status["srm"]["mismatch"]
