"""The training window: the newest rows per ``[training] window``, validated and split by
time into train and holdout."""

from __future__ import annotations

import logging
from typing import Iterable

import polars as pl

from retrain.data import Schema, Window, fingerprint, temporal_split, validate_frame
from retrain.errors import DataValidationError
from retrain.registry import ModelVersion
from retrain.tasks import Task, check_target, infer_task
from retrain.drift.profile import ReferenceProfile, window_profile
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class TrainingData:
    """One validated training window, split into train and holdout by time.

    A plain slotted class on purpose: orchestrators that try to JSON-encode parameters give
    up on it at once instead of walking two data frames.
    """

    __slots__ = ("window", "schema", "train", "holdout", "fingerprint", "timestamp",
                 "rows_without_timestamp", "task", "_window_profile")

    def __init__(self, window: Window, schema: Schema, train: pl.DataFrame,
                 holdout: pl.DataFrame, fingerprint: str, timestamp: str,
                 rows_without_timestamp: int = 0, task: Task = "binary"):
        self.rows_without_timestamp = rows_without_timestamp
        self.task = task
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
                                                          self.window.end, schema, self.task)
        return self._window_profile[schema]

    def of_model(self, model_name: str) -> "TrainingData":
        """The window ``model_name`` trains on (``TrainingSets`` has one per dataset)."""
        return self

    @property
    def holdout_window(self) -> Window:
        ts = self.holdout.get_column(self.timestamp)
        return Window(ts.min(), ts.max())

    def summary(self) -> dict:
        return {"window": self.window.as_dict(), "train_rows": self.train.height,
                "holdout_rows": self.holdout.height, "holdout": self.holdout_window.as_dict(),
                "features": list(self.schema.features), "fingerprint": self.fingerprint,
                "rows_without_timestamp": self.rows_without_timestamp, "task": self.task}


class TrainingSets:
    """The training window of each dataset a run trains on, and which models train on each.
    Slotted, like ``TrainingData``."""

    __slots__ = ("by_dataset", "_dataset_of")

    def __init__(self, by_dataset: dict[str, TrainingData], dataset_of: dict[str, str]):
        self.by_dataset = by_dataset
        self._dataset_of = dataset_of

    def of_model(self, model_name: str) -> TrainingData:
        return self.by_dataset[self._dataset_of[model_name]]

    def models(self, dataset: str) -> list[str]:
        return [m for m, d in self._dataset_of.items() if d == dataset]


def load_training_sets(ws: Workspace, models: list[str],
                       production: dict[str, ModelVersion | None] | None = None) -> TrainingSets:
    """``load_training_data`` once per dataset that ``models`` train on."""
    production = production or {}
    by_dataset, dataset_of = {}, {}
    for dataset, names in ws.datasets_of(models).items():
        by_dataset[dataset] = load_training_data(
            ws.for_dataset(dataset), {m: production.get(m) for m in names})
        dataset_of.update(dict.fromkeys(names, dataset))
    return TrainingSets(by_dataset, dataset_of)


def target_task(ws: Workspace, labels: pl.Series,
                production: Iterable[ModelVersion | None] = ()) -> Task:
    """The task of the target: ``[data] task``, else the one the production versions were
    trained for, else inferred from ``labels``."""
    configured = ws.settings.data.task
    if configured is not None:
        return configured
    stored = sorted({v.task for v in production if v is not None})
    if len(stored) > 1:
        raise DataValidationError(labels.name, f"the production versions were trained for "
                                  f"different tasks ({', '.join(stored)}); set [data] task")
    return stored[0] if stored else infer_task(labels)


def load_training_data(ws: Workspace, production: dict[str, ModelVersion | None] | None = None
                       ) -> TrainingData:
    """The newest window per ``[training] window``, validated, split by time. ``production``:
    the production versions of the run's models (they fix the task when ``[data] task`` does
    not).

    Raises ``DataValidationError`` before anything is trained or registered.
    """
    cfg = ws.settings
    target, ts = cfg.data.target, cfg.data.timestamp
    schema = ws.store.schema()
    window = ws.store.training_window(cfg.training)
    columns = list(dict.fromkeys([ts, target, *schema.features]))
    df = ws.store.rows(window.start, window.end).select(columns).sort(ts).collect()
    validate_frame(df, schema, target=None, what="training")
    task = target_task(ws, df.get_column(target), (production or {}).values())
    check_target(df.get_column(target), task, "training")
    train, holdout = temporal_split(df, ts, cfg.training.holdout_fraction)
    for part, what in ((train, "training (before the holdout)"), (holdout, "holdout")):
        validate_frame(part, schema, target=None, what=what)
        check_target(part.get_column(target), task, what)
    data = TrainingData(window, schema, train, holdout, fingerprint(df), ts,
                        ws.store.report.rows_without_timestamp, task)
    log.info("training window %s .. %s: %d rows for training, %d held out (newest %.0f%%), "
             "%s target", window.start, window.end, train.height, holdout.height,
             100 * cfg.training.holdout_fraction, task)
    return data
