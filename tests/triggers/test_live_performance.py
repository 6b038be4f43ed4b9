"""The performance trigger on live traffic: the production version's served predictions and
the labels fed back for them (``retrain serve``'s prediction log and ``POST /feedback``)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from retrain.experiments import ABTestingManager
from retrain.triggers.live import live_outcomes
from retrain.pipeline import run_pipeline
from retrain.triggers import check_performance
from retrain.workspace import Workspace

MODEL = "lightgbm"


@pytest.fixture
def served(make_workspace) -> Workspace:
    ws = make_workspace("live")
    run_pipeline(ws, [MODEL])
    return ws


def serve_traffic(ws: Workspace, n: int, signal: float, seed: int, *, prefix: str = "r",
                  version_id: str | None = None, before_promotion: bool = False) -> None:
    """``n`` predictions of production (or ``version_id``) with labels; probabilities whose
    ROC AUC grows with ``signal`` (about 0.5 at 0, near 1 at 3)."""
    rng = np.random.default_rng(seed)
    production = ws.registry.production_version(MODEL)
    at = production.promoted_at + (timedelta(days=-1) if before_promotion else timedelta(minutes=1))
    y = rng.integers(0, 2, n)
    proba = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=n))))
    manager = ABTestingManager(workspace=ws)
    manager.log_predictions([{"request_id": f"{prefix}-{i}", "model_name": MODEL,
                              "version_id": version_id or production.version_id,
                              "variant": "production", "experiment_id": None,
                              "prediction": float(p >= 0.5), "probability": float(p), "at": at}
                             for i, p in enumerate(proba)])
    manager.log_feedback([{"request_id": f"{prefix}-{i}", "label": float(label), "at": at}
                          for i, label in enumerate(y)])


def live(ws: Workspace, **triggers) -> Workspace:
    for key, value in {"performance_source": "live", **triggers}.items():
        setattr(ws.settings.triggers, key, value)
    return ws


def test_a_degraded_model_on_live_traffic_triggers(served):
    serve_traffic(served, 600, signal=0.0, seed=1)  # no better than chance
    check = check_performance(live(served), MODEL)
    assert check.source == "live feedback" and check.rows == 600
    assert check.triggered and check.significant
    assert check.current == pytest.approx(0.5, abs=0.06)


def test_a_healthy_model_on_live_traffic_does_not(served):
    baseline = served.registry.production_version(MODEL).metrics["roc_auc"]
    serve_traffic(served, 600, signal=3.0, seed=2)  # far better than at promotion
    check = check_performance(live(served), MODEL)
    assert check.source == "live feedback" and not check.triggered
    assert check.current > baseline


def test_the_latest_label_counts_and_other_versions_and_older_traffic_do_not(served):
    production = served.registry.production_version(MODEL)
    serve_traffic(served, 50, signal=3.0, seed=3)
    serve_traffic(served, 40, signal=0.0, seed=4, prefix="old", before_promotion=True)
    serve_traffic(served, 30, signal=0.0, seed=5, prefix="other", version_id="lightgbm-v9")
    y, proba = live_outcomes(served.registry, MODEL, production.version_id, since=production.promoted_at)
    assert len(y) == 50
    # A corrected label replaces the first one (sent after the prediction, logged one minute
    # after the promotion).
    ABTestingManager(workspace=served).log_feedback([{
        "request_id": "r-0", "label": float(1 - y[-1]),
        "at": production.promoted_at + timedelta(minutes=2)}])
    y2, _ = live_outcomes(served.registry, MODEL, production.version_id, since=production.promoted_at)
    assert len(y2) == 50 and y2[-1] == 1 - y[-1] and (y2[:-1] == y[:-1]).all()


def test_too_few_live_outcomes_fall_back_to_the_store_or_say_so(served, drift_month):
    serve_traffic(served, 50, signal=0.0, seed=6)
    only_live = check_performance(live(served, performance_min_live_outcomes=200), MODEL)
    assert not only_live.triggered and only_live.source == "live feedback"
    assert "50 live outcomes" in only_live.note and "need 200" in only_live.note
    drift_month(served)
    auto = check_performance(live(served, performance_source="auto",
                                  performance_min_live_outcomes=200), MODEL)
    assert auto.source == "feature store" and auto.rows == 2000
