"""A multiclass model's live numbers: served through the prediction service with each class's
probability logged, its A/B test judged by accuracy or log loss on the classes fed back, and
its performance trigger on live feedback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest import add_version
from retrain.demo import generate_month
from retrain.experiments import ABTestingManager, store
from retrain.pipeline import run_pipeline
from retrain.stats.metrics import compute_metrics
from retrain.triggers import check_performance
from serving import AUTH, client_for

MODEL = "lightgbm"


@pytest.fixture
def graded(make_workspace):
    ws = make_workspace("graded", task="multiclass")
    run_pipeline(ws, [MODEL])
    add_version(ws)
    return ws


def test_an_ab_test_of_a_multiclass_model_uses_the_true_class_probability(graded):
    manager = ABTestingManager(workspace=graded, cache_seconds=3600)
    test = manager.create_ab_test(MODEL, version_b="lightgbm-v2", traffic_split=0.5,
                                  metric="log_loss")
    rows = generate_month(5, 120, drifted=False, seed=21, task="multiclass")
    classes = graded.registry.load(graded.registry.production_version(MODEL)).classes
    answers, labels = {}, {}
    with client_for(graded) as api:
        for i, row in enumerate(rows.iter_rows(named=True)):
            features = {k: v for k, v in row.items()
                        if k not in ("application_id", "applied_at", "risk_grade")}
            features = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in features.items()}
            r = api.post(f"/predict/{MODEL}", json={"request_id": f"q-{i}", "features": features},
                         headers=AUTH)
            assert r.status_code == 200, r.text
            answers[f"q-{i}"] = r.json()
            labels[f"q-{i}"] = classes.index(row["risk_grade"])
            fed = api.post("/feedback", json={"request_id": f"q-{i}", "label": labels[f"q-{i}"],
                                              "model": MODEL}, headers=AUTH)
            assert fed.status_code == 202, fed.text
    expected = {"A": [], "B": []}
    for key, answer in answers.items():
        p = answer["probabilities"][str(classes[labels[key]])]
        expected[answer["variant"]].append(-math.log(min(max(p, 1e-15), 1 - 1e-15)))
    sums = store.outcome_sums(graded.registry, test["test_id"], "log_loss", "multiclass")
    for variant in ("A", "B"):
        n, total, _ = sums[variant]
        assert n == len(expected[variant]) > 20
        assert total == pytest.approx(sum(expected[variant]), rel=1e-9)
    accuracy = store.outcome_sums(graded.registry, test["test_id"], "accuracy", "multiclass")
    right = sum(answer["prediction"] == classes[labels[key]] for key, answer in answers.items())
    assert accuracy["A"][1] + accuracy["B"][1] == right
    # The test's own status reads the same numbers: the mean log loss of each variant.
    status = manager.check_test_status(test["test_id"])
    assert status["metric"] == "log_loss"
    for variant in ("A", "B"):
        assert status["variants"][variant]["metric"] == pytest.approx(
            sum(expected[variant]) / len(expected[variant]), rel=1e-9)


def test_the_performance_trigger_reads_a_multiclass_models_live_feedback(graded):
    production = graded.registry.production_version(MODEL)
    model = graded.registry.load(production)
    rows = generate_month(5, 300, drifted=False, seed=22, task="multiclass")
    with client_for(graded) as api:
        for i, row in enumerate(rows.iter_rows(named=True)):
            features = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in row.items()
                        if k not in ("application_id", "applied_at", "risk_grade")}
            assert api.post(f"/predict/{MODEL}", json={"request_id": f"p-{i}", "features": features},
                            headers=AUTH).status_code == 200
            assert api.post("/feedback", json={
                "request_id": f"p-{i}", "label": model.classes.index(row["risk_grade"]),
                "model": MODEL}, headers=AUTH).status_code == 202
    graded.settings.triggers.performance_source = "live"
    graded.settings.triggers.performance_min_live_outcomes = 100
    check = check_performance(graded, MODEL)
    assert check.source == "live feedback" and check.rows == 300
    y = np.asarray([model.classes.index(g) for g in rows["risk_grade"]])
    scores = model.predict_scores(rows)
    assert check.metric == "roc_auc_ovr"
    assert check.current == pytest.approx(compute_metrics(y, scores, task="multiclass")["roc_auc_ovr"],
                                          rel=1e-9)
