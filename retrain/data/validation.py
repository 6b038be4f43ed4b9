"""Checks of a window before it is used (collected, or in a stream), its content hash, and
the split by time.

Every problem is a ``DataValidationError`` that names the column and what is wrong.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from retrain.data.schema import Schema
from retrain.errors import DataValidationError
from retrain.tasks import check_target


def _feature_checks(schema: Schema, columns: pl.Schema) -> list[pl.Expr]:
    """What ``validate_frame`` checks of the features, as aggregates (one row)."""
    checks = [pl.len().alias("rows")]
    for i, col in enumerate(schema.features):
        checks.append(pl.col(col).null_count().alias(f"nulls{i}"))
        if col not in schema.categorical and columns[col].is_float():
            checks.append(pl.col(col).is_infinite().any().alias(f"infinite{i}"))
    return checks


def _raise_on(checks: dict, schema: Schema, what: str) -> None:
    if checks["rows"] == 0:
        raise DataValidationError(None, f"the {what} window is empty")
    for i, col in enumerate(schema.features):
        if checks[f"nulls{i}"] == checks["rows"]:
            raise DataValidationError(col, f"all values are null in the {what} window")
        if checks.get(f"infinite{i}"):
            raise DataValidationError(col, f"non-finite values (inf) in the {what} window")


def validate_frame(df: pl.DataFrame, schema: Schema, *, target: str | None, what: str,
                   require_two_classes: bool = False, task: str = "binary") -> None:
    """Check a collected window before it is used; raise ``DataValidationError`` on a problem."""
    if df.height == 0:
        raise DataValidationError(None, f"the {what} window is empty")
    _raise_on(df.select(_feature_checks(schema, df.schema)).row(0, named=True), schema, what)
    if target is not None:
        check_target(df.get_column(target), task, what, require_two_classes)


def validate_window(lf: pl.LazyFrame, schema: Schema, *, what: str) -> int:
    """The feature checks of ``validate_frame`` on a lazy window, run in a stream (for a
    window too large to collect); returns its row count."""
    missing = [c for c in schema.features if c not in lf.collect_schema()]
    if missing:
        raise DataValidationError(missing[0], f"feature column is missing from the {what} window")
    checks = (lf.select(_feature_checks(schema, lf.collect_schema()))
              .collect(engine="streaming").row(0, named=True))
    _raise_on(checks, schema, what)
    return int(checks["rows"])


def fingerprint(df: pl.DataFrame) -> str:
    """A content hash of a frame (column names, types, values, row order), stable across
    library versions, to tell which data a model saw."""
    digest = hashlib.sha256()
    for name in df.columns:
        series = df.get_column(name)
        digest.update(f"{name}:{series.dtype}:".encode())
        if series.dtype.is_numeric() or series.dtype == pl.Boolean:
            digest.update(np.ascontiguousarray(series.cast(pl.Float64).to_numpy()).tobytes())
        else:
            digest.update("\x1f".join("\x00" if v is None else str(v) for v in series.to_list()).encode())
    return digest.hexdigest()[:16]


def temporal_split(df: pl.DataFrame, timestamp: str, holdout_fraction: float
                   ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split by time: the holdout is the newest ``holdout_fraction`` of the rows.

    Rows that share the cut-off timestamp all go to the holdout, so no instant is on both sides.
    """
    df = df.sort(timestamp)
    cut_index = int(df.height * (1 - holdout_fraction))
    if cut_index <= 0 or cut_index >= df.height:
        raise DataValidationError(None, f"window of {df.height} rows is too small to hold out "
                                  f"{holdout_fraction:.0%} of it")
    cutoff = df.get_column(timestamp)[cut_index]
    train = df.filter(pl.col(timestamp) < cutoff)
    holdout = df.filter(pl.col(timestamp) >= cutoff)
    if train.height == 0:
        raise DataValidationError(timestamp, "all rows share one timestamp; cannot split by time")
    return train, holdout
