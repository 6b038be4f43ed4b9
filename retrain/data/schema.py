"""Which columns are features and of what kind, and time windows of the feature store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl


_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8,
            pl.UInt16, pl.UInt32, pl.UInt64, pl.Boolean)


_TEXT = (pl.String, pl.Categorical, pl.Enum)


def dtype_family(dtype: pl.DataType) -> str:
    """Coarse type of a column: 'numeric', 'categorical' or 'other'.

    Int64 becoming Float64 is not a type change (a null in a CSV does that); String
    becoming Float64 is.
    """
    if isinstance(dtype, _NUMERIC) or dtype in _NUMERIC:
        return "numeric"
    if isinstance(dtype, _TEXT) or dtype in _TEXT:
        return "categorical"
    return "other"


def as_category(column: str, dtype: pl.DataType) -> pl.Expr:
    """``column`` as the text of its categories, the same whatever its storage type: a
    category code 3 reads "3" whether a file stored it as Int64, as Float64 (a CSV with an
    empty cell) or as text; booleans read "true"/"false"; NaN is missing."""
    value = pl.col(column)
    if dtype.is_float():
        whole = value.is_finite() & (value == value.round(0)) & (value.abs() < 2.0 ** 53)
        return (pl.when(value.is_nan()).then(None)
                .when(whole).then(value.cast(pl.Int64).cast(pl.String))
                .otherwise(value.cast(pl.String)).alias(column))
    return value.cast(pl.String).alias(column)


def category_text(value: object) -> str | None:
    """One value as ``as_category`` reads it (a request's JSON value, a cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer() and abs(value) < 2.0 ** 53:
            return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # inclusive

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Schema:
    """Which columns are features and of what kind; saved with every model version."""

    features: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.categorical)

    def as_dict(self) -> dict[str, list[str]]:
        return {"features": list(self.features), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, raw: dict) -> "Schema":
        return cls(tuple(raw["features"]), tuple(raw["categorical"]))
