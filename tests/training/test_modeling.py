"""Model kinds, preprocessing, determinism and metrics."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import ConfigError, DataValidationError
from retrain.stats.metrics import compute_metrics, relative_improvement
from retrain.modeling import Preprocessing, fit_model

SCHEMA = Schema(("income", "credit_score", "debt_to_income", "months_employed", "home_ownership", "purpose"),
                ("home_ownership", "purpose"))
SMALL = {"random_forest": {"n_estimators": 20}, "lightgbm": {"n_estimators": 30}, "logistic_regression": {}}


@pytest.fixture(scope="module")
def train_test():
    return generate_month(0, 1500, drifted=False, seed=3), generate_month(1, 600, drifted=False, seed=3)


@pytest.mark.parametrize("kind", ["random_forest", "lightgbm", "logistic_regression"])
def test_each_kind_learns_and_is_deterministic(kind, train_test):
    train, test = train_test
    a = fit_model(kind, SMALL[kind], train, SCHEMA, "defaulted", seed=1)
    b = fit_model(kind, SMALL[kind], train, SCHEMA, "defaulted", seed=1)
    pa, pb = a.predict_proba(test), b.predict_proba(test)
    assert np.array_equal(pa, pb)
    auc = compute_metrics(test["defaulted"].to_numpy(), pa)["roc_auc"]
    assert auc > 0.7, f"{kind} did not learn the demo relation (AUC {auc:.3f})"
    labels, proba = a.predict(test)
    assert set(np.unique(labels)) <= {0, 1} and np.array_equal(proba, pa)


def test_unknown_categories_and_missing_values_are_handled(train_test):
    train, test = train_test
    model = fit_model("lightgbm", SMALL["lightgbm"], train, SCHEMA, "defaulted", seed=1)
    odd = test.head(5).with_columns(pl.lit("never-seen").alias("purpose"),
                                    pl.lit(None, dtype=pl.Float64).alias("income"))
    proba = model.predict_proba(odd)
    assert np.all(np.isfinite(proba)) and proba.shape == (5,)


def test_preprocessing_encodes_in_training_order_and_roundtrips():
    df = pl.DataFrame({"b": ["x", "y", None, "z"], "a": [1, 2, 3, 4]})
    prep = Preprocessing.fit(df.head(2), Schema(("a", "b"), ("b",)))
    X = prep.transform(df)
    assert X[:, 0].tolist() == [1, 2, 3, 4]
    assert X[0, 1] == 0 and X[1, 1] == 1 and math.isnan(X[2, 1]) and math.isnan(X[3, 1])
    again = Preprocessing.from_dict(prep.as_dict())
    assert np.array_equal(again.transform(df), X, equal_nan=True)


def test_missing_feature_is_a_clear_error(train_test):
    train, test = train_test
    model = fit_model("logistic_regression", {}, train, SCHEMA, "defaulted", seed=1)
    with pytest.raises(DataValidationError, match="'credit_score': feature column is missing"):
        model.predict_proba(test.drop("credit_score"))


def test_text_in_a_numeric_feature_is_a_clear_error(train_test):
    train, test = train_test
    model = fit_model("logistic_regression", {}, train, SCHEMA, "defaulted", seed=1)
    with pytest.raises(DataValidationError, match="'income': expected a numeric column"):
        model.predict_proba(test.with_columns(pl.col("income").cast(pl.String)))


def test_bad_params_name_the_kind(train_test):
    train, _ = train_test
    with pytest.raises(ConfigError, match="random_forest"):
        fit_model("random_forest", {"n_trees": 3}, train, SCHEMA, "defaulted", seed=1)
    with pytest.raises(ConfigError, match="unknown model kind"):
        fit_model("catboost", {}, train, SCHEMA, "defaulted", seed=1)


def test_metrics_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = compute_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    with pytest.raises(DataValidationError, match="only one class"):
        compute_metrics(np.array([1, 1]), np.array([0.2, 0.3]))


def test_relative_improvement_direction():
    assert relative_improvement("roc_auc", 0.84, 0.80) == pytest.approx(0.05)
    assert relative_improvement("roc_auc", 0.76, 0.80) == pytest.approx(-0.05)
    # Lower is better: a 10% reduction of log loss is a +10% improvement.
    assert relative_improvement("log_loss", 0.45, 0.50) == pytest.approx(0.10)
    assert relative_improvement("brier", 0.22, 0.20) == pytest.approx(-0.10)


@pytest.mark.parametrize("kind", ["random_forest", "lightgbm", "logistic_regression"])
def test_no_rows_give_no_predictions(kind, train_test):
    train, test = train_test
    model = fit_model(kind, SMALL[kind], train, SCHEMA, "defaulted", seed=1)
    assert model.predict_proba(test.head(0)).shape == (0,)


def test_per_feature_lightgbm_params_are_not_refused_but_bad_ones_are():
    from retrain.modeling import validate_params
    validate_params("lightgbm", {"monotone_constraints": [1, 0, -1, 0, 0, 0]}, 0, "[models.m] params")
    with pytest.raises(ConfigError, match=r"\[models.m\] params: .*num_leaves"):
        validate_params("lightgbm", {"num_leaves": 1}, 0, "[models.m] params")
