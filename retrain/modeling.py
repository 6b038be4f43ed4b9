"""Preprocessing, fitting and prediction; the kinds themselves are in ``retrain.estimators``.

A ``TrainedModel`` carries everything needed to predict exactly as it did when it was
evaluated: the feature order, the categorical encoding (category -> code, unknown -> missing),
the class labels and the fitted estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from retrain.data import Schema
from retrain.data.schema import as_category
from retrain.errors import ConfigError, DataValidationError
from retrain.estimators import DEFAULT_SOURCE, KINDS, EstimatorSource, FitInput, kind_of
from retrain.tasks import Task, encode_target, infer_task, predicted_labels

__all__ = ["KINDS", "Preprocessing", "TrainedModel", "encode_target", "fit_model",
           "resolved_params", "validate_params"]


@dataclass
class Preprocessing:
    """Column order and categorical encoding, fitted on the training rows only."""

    schema: Schema
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, df: pl.DataFrame, schema: Schema) -> "Preprocessing":
        cats = {}
        for col in schema.categorical:
            values = (df.select(as_category(col, df.schema[col])).to_series()
                      .drop_nulls().unique().sort().to_list())
            cats[col] = values
        return cls(schema, cats)

    def transform(self, df: pl.DataFrame) -> np.ndarray:
        """Features as a float matrix in training order; unknown categories become NaN."""
        missing = [c for c in self.schema.features if c not in df.columns]
        if missing:
            raise DataValidationError(missing[0], "feature column is missing")
        exprs = []
        for col in self.schema.features:
            if col in self.categories:
                mapping = {v: float(i) for i, v in enumerate(self.categories[col])}
                exprs.append(as_category(col, df.schema[col])
                             .replace_strict(mapping, default=None, return_dtype=pl.Float64).alias(col))
            else:
                dtype = df.schema[col]
                if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
                    raise DataValidationError(col, f"expected a numeric column, found {dtype}")
                exprs.append(pl.col(col).cast(pl.Float64))
        return df.select(exprs).to_numpy().astype(np.float64, copy=False)

    def as_frame(self, X: np.ndarray):
        """``X`` (from ``transform``) as the pandas DataFrame the ``sklearn`` kind takes:
        numeric features as float64, categoricals as ``Categorical`` columns of the training
        categories (unknown or missing: NaN)."""
        import pandas as pd  # late: only the sklearn kind needs pandas
        columns = {}
        for i, col in enumerate(self.schema.features):
            if col in self.categories:
                codes = np.where(np.isnan(X[:, i]), -1, X[:, i]).astype(np.int64)
                columns[col] = pd.Categorical.from_codes(codes, categories=self.categories[col])
            else:
                columns[col] = X[:, i]
        return pd.DataFrame(columns)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.as_dict(), "categories": self.categories}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Preprocessing":
        return cls(Schema.from_dict(raw["schema"]), {k: list(v) for k, v in raw["categories"].items()})


@dataclass
class TrainedModel:
    kind: str
    params: dict[str, Any]
    preprocessing: Preprocessing
    classes: list[Any]  # the labels as seen in training: binary [negative, positive],
    # multiclass in code order, none for a regression
    estimator: Any  # what the kind fits: a scikit-learn estimator, a LightGBM or XGBoost booster
    # Where a sklearn-kind estimator came from, and the extra types its artifact may hold.
    source: EstimatorSource = field(default=DEFAULT_SOURCE, compare=False)
    task: Task = "binary"

    def predict_scores(self, df: pl.DataFrame) -> np.ndarray:
        """The positive class's probability (binary), each class's probability (multiclass,
        one column per class in ``classes`` order) or the predicted value (regression)."""
        return self.scores_of_matrix(self.preprocessing.transform(df))

    predict_proba = predict_scores  # the name the binary case has always had

    def scores_of_matrix(self, X: np.ndarray) -> np.ndarray:
        """``predict_scores`` of rows already encoded by ``preprocessing.transform``."""
        if X.shape[0] == 0:
            shape = (0, len(self.classes)) if self.task == "multiclass" else (0,)
            return np.empty(shape, dtype=np.float64)
        scores = kind_of(self.kind).scores(self.estimator, X, self.preprocessing.as_frame,
                                           self.task)
        return np.asarray(scores, dtype=np.float64)

    def predict(self, df: pl.DataFrame, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(what it predicts: a class or a value, the scores)."""
        scores = self.predict_scores(df)
        return predicted_labels(scores, self.classes, self.task, threshold), scores


def resolved_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    return kind_of(kind).params(params)


def validate_params(kind: str, params: dict[str, Any], seed: int, where: str,
                    source: EstimatorSource = DEFAULT_SOURCE, task: Task = "binary") -> None:
    """Check ``params`` against the estimator of ``kind`` without training anything:
    ``ConfigError`` naming ``where`` (the config key) and the estimator's own complaint."""
    try:
        kind_of(kind).check(resolved_params(kind, params), seed, source, task)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"{where}: {str(exc).strip().splitlines()[0]}") from None


def fit_model(kind: str, params: dict[str, Any], train: pl.DataFrame, schema: Schema,
              target: str, seed: int, source: EstimatorSource = DEFAULT_SOURCE,
              task: Task | None = None) -> TrainedModel:
    """Fit one model of ``kind`` on ``train``; deterministic for a given seed. ``task``
    (default: inferred from the target) says what the target is."""
    model_kind = kind_of(kind)
    params = model_kind.params(params)
    labels = train.get_column(target)
    task = task or infer_task(labels)
    prep = Preprocessing.fit(train, schema)
    X = prep.transform(train)
    y, classes = encode_target(labels, task=task)
    data = FitInput(X, y, tuple(i for i, c in enumerate(schema.features) if c in schema.categorical),
                    prep.as_frame, task, len(classes))
    try:
        estimator = model_kind.fit(data, params, seed, source)
    except (TypeError, ValueError) as exc:
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise ConfigError(f"{source.where} params for {kind}: {exc}") from None
        raise
    return TrainedModel(kind, params, prep, classes, estimator, source, task)
