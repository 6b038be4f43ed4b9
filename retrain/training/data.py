"""The training window: the newest rows per ``[training] window``, validated and split by
time into train and holdout."""

from __future__ import annotations

import logging

import polars as pl

from retrain.data import Schema, Window, fingerprint, temporal_split, validate_frame
from retrain.drift.profile import ReferenceProfile, window_profile
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class TrainingData:
    """One validated training window, split into train and holdout by time.

    A plain slotted class on purpose: orchestrators that try to JSON-encode parameters give
    up on it at once instead of walking two data frames.
    """

    __slots__ = ("window", "schema", "train", "holdout", "fingerprint", "timestamp",
                 "rows_without_timestamp", "_window_profile")

    def __init__(self, window: Window, schema: Schema, train: pl.DataFrame,
                 holdout: pl.DataFrame, fingerprint: str, timestamp: str,
                 rows_without_timestamp: int = 0):
        self.rows_without_timestamp = rows_without_timestamp
        self.window = window
        self.schema = schema
        self.train = train
        self.holdout = holdout
        self.fingerprint = fingerprint
        self.timestamp = timestamp
        self._window_profile: dict[Schema, ReferenceProfile] = {}

    def window_profile(self, ws: Workspace, schema: Schema | None = None) -> ReferenceProfile:
        """The drift reference profile of this window for ``schema`` (default: every feature
        of the window), computed once for all the models that train on those features."""
        schema = schema or self.schema
        if schema not in self._window_profile:
            self._window_profile[schema] = window_profile(ws, self.window.start,
                                                          self.window.end, schema)
        return self._window_profile[schema]

    @property
    def holdout_window(self) -> Window:
        ts = self.holdout.get_column(self.timestamp)
        return Window(ts.min(), ts.max())

    def summary(self) -> dict:
        return {"window": self.window.as_dict(), "train_rows": self.train.height,
                "holdout_rows": self.holdout.height, "holdout": self.holdout_window.as_dict(),
                "features": list(self.schema.features), "fingerprint": self.fingerprint,
                "rows_without_timestamp": self.rows_without_timestamp}


def load_training_data(ws: Workspace) -> TrainingData:
    """The newest window per ``[training] window``, validated, split by time.

    Raises ``DataValidationError`` before anything is trained or registered.
    """
    cfg = ws.settings
    target, ts = cfg.data.target, cfg.data.timestamp
    schema = ws.store.schema()
    window = ws.store.training_window(cfg.training)
    columns = list(dict.fromkeys([ts, target, *schema.features]))
    df = ws.store.rows(window.start, window.end).select(columns).sort(ts).collect()
    validate_frame(df, schema, target=target, what="training", require_two_classes=True)
    train, holdout = temporal_split(df, ts, cfg.training.holdout_fraction)
    validate_frame(train, schema, target=target, what="training (before the holdout)",
                   require_two_classes=True)
    validate_frame(holdout, schema, target=target, what="holdout", require_two_classes=True)
    data = TrainingData(window, schema, train, holdout, fingerprint(df), ts,
                        ws.store.report.rows_without_timestamp)
    log.info("training window %s .. %s: %d rows for training, %d held out (newest %.0f%%)",
             window.start, window.end, train.height, holdout.height,
             100 * cfg.training.holdout_fraction)
    return data
