"""Load the training window, split it by time, fit candidates and register them."""

from __future__ import annotations

import logging
import polars as pl

from retrain.data import Schema, Window, fingerprint, temporal_split, validate_frame
from retrain.errors import RetrainError
from retrain.metrics import compute_metrics
from retrain.modeling import encode_target, fit_model
from retrain.profile import ReferenceProfile, window_profile, with_holdout
from retrain.registry import ModelVersion
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class TrainingData:
    """One validated training window, split into train and holdout by time.

    A plain slotted class on purpose: orchestrators that try to JSON-encode parameters give
    up on it at once instead of walking two data frames.
    """

    __slots__ = ("window", "schema", "train", "holdout", "fingerprint", "timestamp",
                 "_window_profile")

    def __init__(self, window: Window, schema: Schema, train: pl.DataFrame,
                 holdout: pl.DataFrame, fingerprint: str, timestamp: str):
        self.window = window
        self.schema = schema
        self.train = train
        self.holdout = holdout
        self.fingerprint = fingerprint
        self.timestamp = timestamp
        self._window_profile: ReferenceProfile | None = None

    def window_profile(self, ws: Workspace) -> ReferenceProfile:
        """The drift reference profile of this window, computed once for all models."""
        if self._window_profile is None:
            self._window_profile = window_profile(ws, self.window.start, self.window.end,
                                                  self.schema)
        return self._window_profile

    @property
    def holdout_window(self) -> Window:
        ts = self.holdout.get_column(self.timestamp)
        return Window(ts.min(), ts.max())

    def summary(self) -> dict:
        return {"window": self.window.as_dict(), "train_rows": self.train.height,
                "holdout_rows": self.holdout.height, "holdout": self.holdout_window.as_dict(),
                "features": list(self.schema.features), "fingerprint": self.fingerprint}


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
    data = TrainingData(window, schema, train, holdout, fingerprint(df), ts)
    log.info("training window %s .. %s: %d rows for training, %d held out (newest %.0f%%)",
             window.start, window.end, train.height, holdout.height,
             100 * cfg.training.holdout_fraction)
    return data


def check_production_compatible(ws: Workspace, model_name: str) -> None:
    """The production version's features must still exist with the same type."""
    production = ws.registry.production_version(model_name)
    if production is not None:
        ws.store.schema(expected=Schema.from_dict(production.feature_schema))


def train_candidate(ws: Workspace, model_name: str, data: TrainingData,
                    reason: str = "") -> ModelVersion:
    """Fit ``model_name`` on the window, score its holdout, register it as a candidate."""
    cfg = ws.settings.models[model_name]
    target = ws.settings.data.target
    log.info("training %s (%s) on %d rows", model_name, cfg.kind, data.train.height)
    model = fit_model(cfg.kind, cfg.params, data.train, data.schema, target, cfg.seed)
    y, _ = encode_target(data.holdout.get_column(target), model.classes)
    holdout_proba = model.predict_proba(data.holdout)
    metrics = compute_metrics(y, holdout_proba)
    version = ws.registry.register_version(
        model_name=model_name, model=model, train_start=data.window.start,
        train_end=data.window.end, holdout_start=data.holdout_window.start,
        row_count=data.train.height + data.holdout.height, holdout_rows=data.holdout.height,
        data_fingerprint=data.fingerprint, metrics=metrics, reason=reason,
        reference_profile=_profile_bytes(ws, data, holdout_proba, y))
    log.info("registered %s: %s", version.version_id,
             ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return version



def _profile_bytes(ws: Workspace, data: TrainingData, holdout_proba, holdout_labels) -> bytes | None:
    """The version's drift reference profile, serialised; None (drift checks then read the
    reference window) if it cannot be computed: a profile never stops a registration."""
    try:
        profile = with_holdout(data.window_profile(ws), holdout_proba, holdout_labels)
        return profile.to_bytes()
    except (RetrainError, ValueError, OSError, pl.exceptions.PolarsError) as exc:
        log.warning("no drift reference profile stored (checks will read the reference "
                    "window instead): %s", exc)
        return None
