"""Model kinds, their preprocessing, fitting and prediction.

A ``TrainedModel`` carries everything needed to predict exactly as it did when it was
evaluated: the feature order, the categorical encoding (category -> code, unknown -> missing),
the class labels and the fitted estimator.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import polars as pl

from retrain.data import Schema
from retrain.data.schema import as_category
from retrain.errors import ConfigError, DataValidationError

KINDS = ("random_forest", "lightgbm", "logistic_regression")

_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 200, "min_samples_leaf": 5, "n_jobs": 2},
    "lightgbm": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31,
                 "min_child_samples": 20, "verbose": -1},
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
}


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
    classes: list[Any]  # [negative, positive] labels as seen in training
    estimator: Any  # sklearn estimator or lightgbm.Booster

    def predict_proba(self, df: pl.DataFrame) -> np.ndarray:
        """Probability of the positive class (the second of ``classes``)."""
        X = self.preprocessing.transform(df)
        if X.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        if self.kind == "lightgbm":
            return np.asarray(self.estimator.predict(X), dtype=np.float64)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)

    def predict(self, df: pl.DataFrame, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        proba = self.predict_proba(df)
        labels = np.where(proba >= threshold, self.classes[1], self.classes[0])
        return labels, proba


def resolved_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    if kind not in KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    return {**_DEFAULT_PARAMS[kind], **params}


def validate_params(kind: str, params: dict[str, Any], seed: int, where: str) -> None:
    """Check ``params`` against the estimator of ``kind`` without training anything:
    ``ConfigError`` naming ``where`` (the config key) and the estimator's own complaint."""
    resolved = resolved_params(kind, params)
    try:
        # Late: each kind imports its own library, which takes seconds.
        if kind == "random_forest":
            from sklearn.ensemble import RandomForestClassifier
            RandomForestClassifier(random_state=seed, **resolved)._validate_params()
        elif kind == "logistic_regression":
            from sklearn.linear_model import LogisticRegression
            LogisticRegression(random_state=seed, **resolved)._validate_params()
        else:
            import lightgbm as lgb
            options = dict(resolved)
            rounds = int(options.pop("n_estimators", 100))
            if rounds < 1:
                raise ValueError(f"n_estimators must be at least 1, got {rounds}")
            # Per-feature parameters (monotone_constraints, feature_contri, ...) need as many
            # columns as they list; the feature count is known only when data is read.
            width = max([len(v) for v in options.values() if isinstance(v, (list, tuple))],
                        default=1)
            column = np.tile(np.arange(4.0), (len(resolved) + 8, 1)).T.reshape(-1, 1)
            rows = np.repeat(column, width, axis=1)
            labels = (np.arange(rows.shape[0]) % 2).astype(float)
            with _native_stderr_silenced():  # LightGBM's "[Fatal]" line repeats the error
                lgb.train({"objective": "binary", "seed": seed, "verbose": -1,
                           "num_threads": 1, **options},
                          lgb.Dataset(rows, label=labels, params={"verbose": -1}),
                          num_boost_round=1)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"{where}: {str(exc).strip().splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - lightgbm.basic.LightGBMError, without importing it
        if type(exc).__name__ != "LightGBMError":
            raise
        raise ConfigError(f"{where}: {str(exc).strip().splitlines()[0]}") from None


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the few milliseconds of a check: native code writes
    there directly, past Python's logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def encode_target(y: pl.Series, classes: list[Any] | None = None) -> tuple[np.ndarray, list[Any]]:
    """Binary labels as 0/1; the larger label (e.g. 1, True, 'yes' > 'no') is positive."""
    if classes is None:
        classes = sorted(y.unique().to_list())
        if len(classes) == 1:
            classes = [0, classes[0]] if classes[0] not in (0, False) else [classes[0], 1]
    positive = classes[1]
    return (y == positive).cast(pl.Int8).to_numpy(), classes


def fit_model(kind: str, params: dict[str, Any], train: pl.DataFrame, schema: Schema,
              target: str, seed: int) -> TrainedModel:
    """Fit one model of ``kind`` on ``train``; deterministic for a given seed."""
    params = resolved_params(kind, params)
    prep = Preprocessing.fit(train, schema)
    X = prep.transform(train)
    y, classes = encode_target(train.get_column(target))
    cat_idx = [i for i, c in enumerate(schema.features) if c in schema.categorical]
    try:
        # Late: each kind imports its own library, which takes seconds; loading a model
        # of another kind, or naming kinds, needs none of them.
        if kind == "random_forest":
            from sklearn.ensemble import RandomForestClassifier
            est = RandomForestClassifier(random_state=seed, **params).fit(X, y)
            # Parallel predict_proba sums trees in completion order, which changes the last
            # bits; one thread keeps predictions bit-for-bit reproducible.
            est.set_params(n_jobs=1)
        elif kind == "logistic_regression":
            from sklearn.compose import ColumnTransformer
            from sklearn.impute import SimpleImputer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import OneHotEncoder, StandardScaler
            num_idx = [i for i in range(len(schema.features)) if i not in cat_idx]
            parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                       ("scale", StandardScaler())]), num_idx)]
            if cat_idx:
                parts.append(("cat", Pipeline([
                    ("impute", SimpleImputer(strategy="constant", fill_value=-1.0)),
                    ("onehot", OneHotEncoder(handle_unknown="ignore"))]), cat_idx))
            est = Pipeline([("prep", ColumnTransformer(parts)),
                            ("model", LogisticRegression(random_state=seed, **params))]).fit(X, y)
        else:
            import lightgbm as lgb
            # Threads only pay off on large windows; on a busy machine OpenMP threads that
            # spin-wait for each other make small fits many times slower.
            threads = 1 if X.shape[0] < 50_000 else 2
            lgb_params = {"objective": "binary", "seed": seed, "deterministic": True,
                          "force_row_wise": True, "num_threads": threads, **params}
            rounds = int(lgb_params.pop("n_estimators", 100))
            dataset = lgb.Dataset(X, label=y, feature_name=[f"f{i}" for i in range(X.shape[1])],
                                  categorical_feature=cat_idx or "auto", free_raw_data=True)
            est = lgb.train(lgb_params, dataset, num_boost_round=rounds)
    except (TypeError, ValueError) as exc:
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise ConfigError(f"[models] params for {kind}: {exc}") from None
        raise
    return TrainedModel(kind, params, prep, classes, est)
