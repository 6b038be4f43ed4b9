"""The windows a drift check compares, read in a stream so that a window larger than memory
can be checked.

What the statistics are computed on (the same on the reference and the current side):

* features: the window's rows when it has at most ``[drift] max_rows`` of them (exactly the
  rows, and so the numbers, of reading it whole), else a deterministic sample of exactly
  ``max_rows`` rows chosen inside the scan (:func:`retrain.data.stream.sample_window`). KS,
  PSI (its Sturges bins over reference and current combined included) and every other test
  see these rows, so the tests of all features are made at the same sample size and a
  window's p-values do not become ever smaller as it grows;
* the checks of the current window (no feature entirely null, no infinite value) and its row
  count: aggregates over every row, in the stream;
* the label of a classification: the count of each class over every labeled row (exact, as
  before: a count costs memory per class, not per row); a regression target's values:
  sampled like the features.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import polars as pl

from retrain.data import Schema, validate_frame, validate_window
from retrain.data.stream import WindowSample, count_rows, sample_window
from retrain.errors import DataValidationError
from retrain.stats.drift import CategoricalSample, NumericSample, categorical_counts, numeric_sample

if TYPE_CHECKING:
    from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def sampling_key(ws: "Workspace", lf: pl.LazyFrame) -> tuple[str, ...] | None:
    """The columns a window's sample is drawn by: ``[data] entity_id`` with the timestamp when
    it is set, else None (the row's position)."""
    data = ws.settings.data
    if data.entity_id is None:
        return None
    if data.entity_id not in lf.collect_schema():
        raise DataValidationError(data.entity_id, "[data] entity_id names a column the feature "
                                  "store does not have (the drift sample is drawn by it)")
    return (data.entity_id, data.timestamp)


def feature_sample(ws: "Workspace", lf: pl.LazyFrame, schema: Schema, max_rows: int | None,
                   *, validate_as: str | None = None) -> WindowSample:
    """The feature columns of the window ``lf``: whole when it has at most ``max_rows`` rows,
    else sampled in the stream. ``validate_as``: check the window (as ``validate_frame``
    does, over every row) and name it so in errors; an empty window is not an error here."""
    rows = count_rows(lf)
    large = max_rows is not None and rows > max_rows
    if validate_as is not None and large:
        validate_window(lf.select(schema.features), schema, what=validate_as)
    sample = sample_window(lf, max_rows, columns=schema.features, rows=rows,
                           key=sampling_key(ws, lf) if large else None)
    if validate_as is not None and rows and not large:
        validate_frame(sample.frame, schema, target=None, what=validate_as)
    if sample.sampled:
        log.info("%s window of %d rows: drift statistics on a sample of %d rows",
                 validate_as or "drift reference", rows, sample.frame.height)
    return sample


def label_sample(ws: "Workspace", lf: pl.LazyFrame, task: str, max_rows: int | None
                 ) -> CategoricalSample | NumericSample:
    """The label of the labeled window ``lf``: class counts over every row for a
    classification, the values (sampled to ``max_rows``) for a regression."""
    target = ws.settings.data.target
    if task != "regression":
        return categorical_counts(lf.select(target), target)
    rows = count_rows(lf)
    large = max_rows is not None and rows > max_rows
    sample = sample_window(lf, max_rows, columns=[target], rows=rows,
                           key=sampling_key(ws, lf) if large else None)
    return numeric_sample(sample.frame.get_column(target))


def described_rows(sample: CategoricalSample | NumericSample) -> int:
    """The rows a sample describes, missing values included."""
    return sample.n + sample.missing


__all__ = ["described_rows", "feature_sample", "label_sample", "sampling_key"]
