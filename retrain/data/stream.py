"""Windows of the feature store read in a stream: counted and sampled without being held in
memory.

A drift check reads every row newer than the production version's training window, and that
window can be larger than memory. These queries run on polars' streaming engine, which reads
a few row groups at a time, so their peak memory depends on the files' row groups and on the
sample's size, not on the window's length:

* :func:`count_rows`: the window's row count (reads the columns its filters need);
* :func:`sample_window`: a deterministic sample of at most ``max_rows`` rows, chosen inside
  the scan; only the sample is materialised.

How the sample is chosen. Every row gets a 64-bit key, a seeded hash of

* its entity id and timestamp, when the store has an ``[data] entity_id``: the same row gets
  the same key however the rows are split into files or ordered within them (the timestamp
  is part of the key so that an entity's rows are drawn one by one, not all or none: a
  cluster sample would make the KS and chi-square p-values too small);
* else its position in the window (the store reads its files in sorted order).

The scan keeps the rows whose key falls in the lowest ``(max_rows + margin) / rows`` of the
key range, a Bernoulli sample a few standard deviations larger than ``max_rows`` (the margin),
and the ``max_rows`` of them with the smallest keys are the sample: a uniform sample without
replacement of exactly ``max_rows`` rows (a bottom-k sample), the same rows every time for the
same window. A window of at most ``max_rows`` rows is returned whole, in its order. (The
hash is polars' own: the same rows for the same polars version; an upgrade may draw others.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import polars as pl

from retrain.errors import DataValidationError

SAMPLE_SEED = 0
STREAMING = "streaming"
_KEY = "__retrain_sample_key"
_POSITION = "__retrain_sample_position"
_KEY_RANGE = 2 ** 64


@dataclass(frozen=True)
class WindowSample:
    """The rows a statistic is computed on and how many rows the window had."""

    frame: pl.DataFrame
    window_rows: int

    @property
    def sampled(self) -> bool:
        """Whether ``frame`` is a sample (False: the whole window)."""
        return self.frame.height < self.window_rows


def count_rows(lf: pl.LazyFrame) -> int:
    """Rows of a lazy window, counted in a stream."""
    return int(lf.select(pl.len()).collect(engine=STREAMING).item())


def with_sample_key(lf: pl.LazyFrame, key: Sequence[str] | None = None,
               seed: int = SAMPLE_SEED) -> pl.LazyFrame:
    """``lf`` with the 64-bit sampling key of each row (see the module's docstring) as a
    column; ``key``: the columns that identify a row, or None for its position."""
    if key:
        columns = lf.collect_schema()
        absent = [c for c in key if c not in columns]
        if absent:
            raise DataValidationError(absent[0], "sampling key column is missing from the window")
        return lf.with_columns(pl.struct(list(key)).hash(seed=seed).alias(_KEY))
    return (lf.with_row_index(_POSITION)
            .with_columns(pl.col(_POSITION).hash(seed=seed).alias(_KEY))
            .drop(_POSITION))


def sample_window(lf: pl.LazyFrame, max_rows: int | None, *,
                  columns: Sequence[str] | None = None, key: Sequence[str] | None = None,
                  seed: int = SAMPLE_SEED, rows: int | None = None) -> WindowSample:
    """At most ``max_rows`` rows of the window ``lf`` (its ``columns``, default all), chosen
    in a stream by their key (see the module's docstring); ``rows``: the window's row count
    if known. A window of at most ``max_rows`` rows (or ``max_rows=None``) comes back whole."""
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    rows = count_rows(lf) if rows is None else rows
    selected = list(columns) if columns is not None else None
    if max_rows is None or rows <= max_rows:
        whole = lf if selected is None else lf.select(selected)
        return WindowSample(whole.collect(engine=STREAMING), rows)
    keyed = with_sample_key(lf, key, seed)
    keyed = keyed.select([*(selected or lf.collect_schema().names()), _KEY])
    # Five standard deviations of the Bernoulli count above max_rows: fewer than max_rows
    # rows pass about once in 3.5 million windows, and then the next pass takes more.
    margin = math.ceil(5 * math.sqrt(max_rows)) + 16
    while True:
        share = (max_rows + margin) / rows
        if share >= 1:
            candidates = keyed.collect(engine=STREAMING)
            break
        threshold = min(int(share * _KEY_RANGE), _KEY_RANGE - 1)
        candidates = (keyed.filter(pl.col(_KEY) < pl.lit(threshold, dtype=pl.UInt64))
                      .collect(engine=STREAMING))
        if candidates.height >= max_rows:
            break
        margin *= 4
    # The smallest keys, ties by scan order; the sample keeps the window's order.
    sample = (candidates.with_row_index(_POSITION).sort([_KEY, _POSITION]).head(max_rows)
              .sort(_POSITION).drop(_KEY, _POSITION))
    return WindowSample(sample, rows)


__all__ = ["SAMPLE_SEED", "WindowSample", "count_rows", "with_sample_key", "sample_window"]
