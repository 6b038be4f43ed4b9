"""Experiments on a PostgreSQL registry: migration 0004, the one-active-experiment index, the
SQL aggregates (including log loss), ending a test with promotion, and a rollout to 100%."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from pg import temporary_database
from retrain.errors import RegistryError
from retrain.experiments import ABTestingManager, advance_rollouts
from retrain.pipeline import run_pipeline
from retrain.registry import db
from abtest import MODEL, add_version, set_salt, simulate

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 5, 1)


@pytest.fixture
def pg_workspace(make_workspace, monkeypatch):
    with temporary_database("retrain_experiments") as url:
        monkeypatch.setenv("RETRAIN_REGISTRY__URL", url)
        ws = make_workspace("pg")
        assert ws.registry.url.startswith("postgresql")
        run_pipeline(ws, [MODEL])
        add_version(ws)
        add_version(ws)
        yield ws
        ws.registry.dispose()


def test_ab_test_and_rollout_on_postgresql(pg_workspace):
    ws = pg_workspace
    engine = db.make_engine(ws.registry.url)
    assert db.current_revision(engine) == db.head_revision() == "0007"
    manager = ABTestingManager(workspace=ws, cache_seconds=0)

    test = manager.create_ab_test(MODEL, "production", "2", metric="log_loss", now=T0)
    with pytest.raises(RegistryError, match="already has an active A/B test"):
        manager.create_gradual_rollout(MODEL, "3")
    with pytest.raises(IntegrityError):  # the partial unique index itself
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO experiment (id, kind, model_name, version_a, version_b, traffic_b, "
                "salt, status, metric, schedule, step, started_at, result, created_by) VALUES "
                "('x', 'rollout', 'lightgbm', 'lightgbm-v1', 'lightgbm-v3', 0.1, 's', 'paused', "
                "'accuracy', '[]', 1, now(), '{}', 'x')"))
    engine.dispose()

    set_salt(ws, test["test_id"], "pg")
    rng = np.random.default_rng(21)
    rows, feedback = [], []
    for i in range(4000):
        route = manager.route(MODEL, f"pg-{i}")
        label = float(rng.random() < 0.5)
        # B's probabilities are sharper (better log loss) than A's.
        sharp = 0.85 if route.variant == "B" else 0.6
        proba = sharp if label else 1 - sharp
        rows.append({"request_id": f"pg-{i}", "model_name": MODEL, "version_id": route.version_id,
                     "variant": route.variant, "experiment_id": route.experiment_id,
                     "prediction": float(proba >= 0.5), "probability": proba})
        feedback.append({"request_id": f"pg-{i}", "label": label})
    manager.log_predictions(rows)
    manager.log_feedback(feedback)
    status = manager.check_test_status(test["test_id"])
    assert status["variants"]["A"]["metric"] == pytest.approx(-np.log(0.6))
    assert status["variants"]["B"]["metric"] == pytest.approx(-np.log(0.85))
    assert (status["status"], status["winner"]) == ("significant", "B")
    result = manager.end_test(test["test_id"], now=T0 + timedelta(days=1))
    assert result["promoted"] == "lightgbm-v2"
    assert ws.registry.production_version(MODEL).version_id == "lightgbm-v2"

    rollout = manager.create_gradual_rollout(MODEL, "3", strategy="gradual", steps=2, now=T0)
    set_salt(ws, rollout["rollout_id"], "pg-rollout")
    simulate(manager, {"A": 0.8, "B": 0.8}, 2000, np.random.default_rng(22), prefix="ro",
             at=T0 + timedelta(hours=1))
    [entry] = advance_rollouts(ws, now=T0 + timedelta(hours=25))
    assert entry["action"] == "completed"
    assert ws.registry.production_version(MODEL).version_id == "lightgbm-v3"
    actions = [e.action for e in ws.registry.history(MODEL)]
    assert {"ab-test-created", "ab-test-winner", "ab-test-ended", "rollout-started",
            "rollout-completed"} <= set(actions)
