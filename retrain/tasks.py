"""The task of a target: binary, multiclass or regression; how it is inferred, how labels are
encoded, and what a model's scores mean for it (see ``retrain.stats.metrics``)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl

from retrain.errors import DataValidationError

Task = Literal["binary", "multiclass", "regression"]
# An integer target with more distinct values than this is inferred to be a regression.
MAX_INFERRED_CLASSES = 20


def infer_task(y: pl.Series) -> Task:
    """Two values: binary; text, booleans, categories or a few integers: multiclass; numbers
    with many values or fractions: regression."""
    values = y.drop_nulls()
    if values.dtype.is_float():
        values = values.filter(values.is_finite())
    distinct = values.n_unique()
    if distinct <= 2:
        return "binary"
    if not values.dtype.is_numeric():
        return "multiclass"
    whole = values.dtype.is_integer() or bool((values == values.round(0)).all())
    return "multiclass" if whole and distinct <= MAX_INFERRED_CLASSES else "regression"


def encode_target(y: pl.Series, classes: list[Any] | None = None, task: Task = "binary"
                  ) -> tuple[np.ndarray, list[Any]]:
    """Labels as the metrics take them, and the classes (in the model's order).

    Binary: 0/1, the larger label (1, True, "yes" > "no") positive. Multiclass: the class's
    position in ``classes`` (sorted labels of the training rows), -1 for a label the model
    never saw. Regression: the values as floats, no classes.
    """
    if task == "regression":
        if not (y.dtype.is_numeric() or y.dtype == pl.Boolean):
            raise DataValidationError(y.name, f"a regression target must be numeric, found {y.dtype}")
        return y.cast(pl.Float64).to_numpy(), []
    if task == "multiclass":
        if classes is None:
            classes = sorted(y.drop_nulls().unique().to_list())
        codes = {value: i for i, value in enumerate(classes)}
        return np.array([codes.get(v, -1) for v in y.to_list()], dtype=np.int64), list(classes)
    if classes is None:
        classes = sorted(y.unique().to_list())
        if len(classes) == 1:
            classes = [0, classes[0]] if classes[0] not in (0, False) else [classes[0], 1]
    positive = classes[1]
    return (y == positive).cast(pl.Int8).to_numpy(), classes


def check_target(y: pl.Series, task: Task, what: str, require_two_classes: bool = True) -> None:
    """The labels of a window fit ``task``: ``DataValidationError`` naming the problem."""
    if y.null_count():
        raise DataValidationError(y.name, f"{y.null_count()} null labels in the {what} window")
    if task == "regression":
        if not (y.dtype.is_numeric() or y.dtype == pl.Boolean):
            raise DataValidationError(y.name, f"a regression target must be numeric, found "
                                      f"{y.dtype} in the {what} window")
        if y.dtype.is_float() and not y.is_finite().all():
            raise DataValidationError(y.name, f"non-finite labels (inf or NaN) in the {what} window")
        return
    classes = y.unique().to_list()
    if task == "binary" and len(classes) > 2:
        raise DataValidationError(
            y.name, f"a binary target needs 2 classes, found {len(classes)} "
            f"({sorted(map(str, classes))[:5]}...); set [data] task = \"multiclass\" if that "
            "is what it is")
    if require_two_classes and len(classes) < 2:
        raise DataValidationError(y.name, f"the {what} window has only one class ({classes[0]!r})")


def predicted_labels(scores: np.ndarray, classes: list[Any], task: Task,
                     threshold: float = 0.5) -> np.ndarray:
    """What the model predicts: the class (binary at ``threshold``, multiclass the most
    probable), or the value for a regression."""
    if task == "regression":
        return scores
    if task == "multiclass":
        return np.asarray(classes)[np.argmax(scores, axis=1)]
    return np.where(scores >= threshold, classes[1], classes[0])
