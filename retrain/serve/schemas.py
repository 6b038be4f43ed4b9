"""What the prediction service accepts: request bodies, and one row of features checked
against the schema of the version that answers.

The feature names and which of them are categorical come from the version's
``feature_schema``; the known categories come from its artifact (the encoding it was trained
with). Every problem in a row is reported, each naming its feature, so a client can fix a
payload in one round trip.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrain.data.schema import category_text
from retrain.errors import DataValidationError
from retrain.modeling import Preprocessing

UnknownCategory = Literal["reject", "missing"]
MAX_ID_CHARS = 200  # request ids, entity ids and model names
MAX_CATEGORY_CHARS = 1000  # a category's text


class PredictRequest(BaseModel):
    """``POST /predict/{model}``: one row of features. Traffic is split on ``entity_id`` when
    given (the same customer always sees the same variant), else on ``request_id``."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    entity_id: str | int | None = None
    features: dict[str, Any]

    @field_validator("entity_id")
    @classmethod
    def _short_id(cls, value: str | int | None) -> str | int | None:
        if value is not None and not 1 <= len(str(value)) <= MAX_ID_CHARS:
            raise ValueError(f"must have 1 to {MAX_ID_CHARS} characters, got {len(str(value))}")
        return value


class FeedbackRequest(BaseModel):
    """``POST /feedback``: the outcome of an earlier request, its true label and/or a reward."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    model: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    # Binary: 1 for the positive class (the model's second class), 0 for the other;
    # multiclass: the class's position in the model's classes; regression: the true value
    # (PredictionService.label_problem checks it against the named model).
    label: float | None = None
    reward: float | None = None

    @field_validator("label", "reward")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        # Python's JSON parser accepts NaN, Infinity and 1e400 (infinity).
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _an_outcome(self) -> "FeedbackRequest":
        if self.label is None and self.reward is None:
            raise ValueError("send a label, a reward or both")
        return self


class FeatureValidationError(DataValidationError):
    """A row of features does not fit a version's schema; ``problems`` lists every
    ``(feature, message, kind)`` found, kind being missing | extra | type | range | category."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        first, message, _ = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(first, message + more)


class FeatureEncoder:
    """Turns one JSON object of features into the float row the estimator was trained on,
    with the same encoding as ``Preprocessing.transform`` (category -> its code)."""

    def __init__(self, preprocessing: Preprocessing, unknown_category: UnknownCategory = "reject",
                 *, reject_nan: bool = False):
        schema = preprocessing.schema
        self.features: tuple[str, ...] = tuple(schema.features)
        self._index = {name: i for i, name in enumerate(self.features)}
        self._codes = {name: {value: float(code) for code, value in enumerate(values)}
                       for name, values in preprocessing.categories.items()}
        self.unknown_category = unknown_category
        # NaN is a missing value in batch scoring (a polars row); in a JSON payload, which
        # has null for that, it is a mistake (Python's JSON parser accepts NaN).
        self.reject_nan = reject_nan

    @property
    def categories(self) -> dict[str, list[str]]:
        return {name: list(codes) for name, codes in self._codes.items()}

    def encode(self, features: dict[str, Any]) -> np.ndarray:
        """A (1, n_features) float64 row; raises FeatureValidationError naming each bad field.

        ``null`` is a missing value (the models handle those); a key that is absent is an error,
        so a misspelt feature is never silently treated as missing."""
        row = np.empty((1, len(self.features)), dtype=np.float64)
        problems: list[tuple[str, str, str]] = []
        for name, value in features.items():
            index = self._index.get(name)
            if index is None:
                problems.append((name, "unexpected feature: this version does not use it", "extra"))
                continue
            codes = self._codes.get(name)
            problem = self._encode_value(row, index, name, value, codes)
            if problem:
                problems.append((name, problem[0], problem[1]))
        if len(features) - sum(1 for p in problems if p[2] == "extra") < len(self.features):
            problems += [(name, "missing feature (send null for a missing value)", "missing")
                         for name in self.features if name not in features]
        if problems:
            raise FeatureValidationError(problems)
        return row

    def _encode_value(self, row: np.ndarray, index: int, name: str, value: Any,
                      codes: dict[str, float] | None) -> tuple[str, str] | None:
        if value is None:
            row[0, index] = math.nan
            return None
        if codes is None:  # numeric; booleans count as 0/1, as they did in training
            if isinstance(value, (int, float)):
                try:
                    number = float(value)
                except OverflowError:  # an integer beyond float64 (about 1.8e308)
                    return (f"number out of range: an integer of {len(str(abs(value)))} digits "
                            "does not fit a 64-bit float"), "range"
                if math.isinf(number) or (self.reject_nan and math.isnan(number)):
                    # Python's JSON parser accepts NaN, Infinity and 1e400 (infinity).
                    return (f"expected a finite number, got {number!r} (send null for a "
                            "missing value)"), "range"
                row[0, index] = number
                return None
            return f"expected a number, got {_json_type(value)}", "type"
        # Categories are compared as text, as in training (retrain.data.schema.as_category):
        # a code sent as 3, 3.0 or "3" is the same category, true is "true".
        if not isinstance(value, (str, int, float)):
            return f"expected a category (a string), got {_json_type(value)}", "type"
        if isinstance(value, str) and len(value) > MAX_CATEGORY_CHARS:
            return (f"a category of {len(value)} characters; at most {MAX_CATEGORY_CHARS} are "
                    "accepted"), "range"
        text = category_text(value)
        code = codes.get(text)
        if code is None:
            if self.unknown_category == "reject":
                known = ", ".join(repr(c) for c in list(codes)[:20])
                return f"unknown category {text!r}; known: {known}", "category"
            code = math.nan  # what the trained encoding does with a category it never saw
        row[0, index] = code
        return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
