"""The task of a target: inferred when not configured, stored with each version, and never
changed by a later run; the models of each task learn and store their task."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retrain.demo import GRADES, generate_month
from retrain.errors import ConfigError, DataValidationError
from retrain.pipeline import run_pipeline
from retrain.tasks import infer_task


@pytest.mark.parametrize("values, dtype, task", [
    ([0, 1, 1, 0], pl.Int8, "binary"),
    (["no", "yes", "no"], pl.String, "binary"),
    (["A", "B", "C", "A"], pl.String, "multiclass"),
    ([1, 2, 3, 4, 5, 1], pl.Int64, "multiclass"),
    ([1.0, 2.0, 3.0, 3.0], pl.Float64, "multiclass"),  # whole numbers stored as floats
    (list(range(50)), pl.Int64, "regression"),  # more than 20 whole numbers
    ([0.5, 1.25, 3.0, 7.75], pl.Float64, "regression"),
    ([True, False, None], pl.Boolean, "binary"),
])
def test_the_task_is_inferred_from_the_target(values, dtype, task):
    assert infer_task(pl.Series("y", values, dtype=dtype)) == task


def test_a_target_that_outgrows_its_stored_task_is_an_error_naming_it(make_workspace, drift_month):
    ws = make_workspace()
    run_pipeline(ws)
    path = drift_month(ws)
    frame = pl.read_parquet(path)
    third = pl.when(pl.int_range(pl.len()) % 7 == 0).then(2).otherwise(pl.col("defaulted"))
    frame.with_columns(third.cast(pl.Int8).alias("defaulted")).write_parquet(path)
    with pytest.raises(DataValidationError, match=r"a binary target needs 2 classes, found 3.*"
                                                   r"task = \"multiclass\""):
        run_pipeline(ws, force=True)
    assert [v.version_id for v in ws.registry.versions("lightgbm")] == ["lightgbm-v1"]


def test_a_configured_task_that_differs_from_production_fails_that_model(make_workspace):
    ws = make_workspace()
    run_pipeline(ws)
    ws.settings.data.task = "multiclass"  # the 0/1 target read as two classes of a multiclass
    doc = run_pipeline(ws, force=True)
    assert not doc.success
    for name, outcome in doc.models.items():
        assert outcome.candidate_version is None
        assert "task changed" in outcome.reason and "binary" in outcome.reason, outcome.reason
        assert ws.registry.production_version(name).version_id == f"{name}-v1"


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "random_forest", "logistic_regression"])
def test_each_built_in_kind_learns_several_classes(kind):
    from retrain.data import Schema
    from retrain.modeling import fit_model
    from retrain.stats.metrics import compute_metrics
    from retrain.tasks import encode_target
    train = generate_month(0, 2000, drifted=False, seed=3, task="multiclass")
    test = generate_month(1, 800, drifted=False, seed=3, task="multiclass")
    schema = Schema(("income", "loan_amount", "credit_score", "debt_to_income", "months_employed",
                     "home_ownership", "purpose"), ("home_ownership", "purpose"))
    params = {"n_estimators": 40} if kind != "logistic_regression" else {}
    model = fit_model(kind, params, train, schema, "risk_grade", seed=1)
    assert model.task == "multiclass" and model.classes == GRADES
    scores = model.predict_scores(test)
    assert scores.shape == (800, 4) and np.allclose(scores.sum(axis=1), 1)
    y, _ = encode_target(test["risk_grade"], model.classes, "multiclass")
    assert compute_metrics(y, scores, task="multiclass")["roc_auc_ovr"] > 0.75, kind
    labels, _ = model.predict(test)
    assert set(labels.tolist()) <= set(GRADES)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "random_forest"])
def test_each_regression_kind_learns_the_value(kind):
    from retrain.data import Schema
    from retrain.modeling import fit_model
    from retrain.stats.metrics import compute_metrics
    train = generate_month(0, 2000, drifted=False, seed=3, task="regression")
    test = generate_month(1, 800, drifted=False, seed=3, task="regression")
    schema = Schema(("income", "loan_amount", "credit_score", "debt_to_income", "months_employed",
                     "home_ownership", "purpose"), ("home_ownership", "purpose"))
    model = fit_model(kind, {"n_estimators": 60}, train, schema, "loss_amount", seed=1)
    assert model.task == "regression" and model.classes == []
    metrics = compute_metrics(test["loss_amount"].to_numpy(), model.predict_scores(test),
                              task="regression")
    assert metrics["r2"] > 0.5, (kind, metrics)


def test_logistic_regression_refuses_a_regression_target_before_training(make_workspace):
    ws = make_workspace(task="regression")
    ws.settings.models["lightgbm"].kind = "logistic_regression"
    ws.settings.models["lightgbm"].params = {}
    with pytest.raises(ConfigError, match=r"\[models.lightgbm\] kind: logistic_regression is a "
                                          r"classifier"):
        run_pipeline(ws)
    assert ws.registry.versions("random_forest") == []  # refused before any training


def test_an_xgboost_objective_that_gives_no_scores_is_refused_before_training():
    from retrain.modeling import validate_params
    validate_params("xgboost", {"max_depth": 3}, 0, "[models.x] params", task="multiclass")
    with pytest.raises(ConfigError, match=r"objective 'multi:softmax' does not give the scores "
                                          r"a multiclass model is judged by"):
        validate_params("xgboost", {"objective": "multi:softmax"}, 0, "[models.x] params",
                        task="multiclass")
    with pytest.raises(ConfigError, match="binary:logistic"):
        validate_params("xgboost", {"objective": "reg:squarederror"}, 0, "[models.x] params")
