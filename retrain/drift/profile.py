"""The reference profile: what a drift check needs of a version's training data, computed once.

When a version is trained, its reference window (every row of its training window, labeled or
not, sampled to ``[drift] max_rows`` in a stream, see :mod:`retrain.drift.window`) is reduced to

* per numeric feature: the sorted finite values (KS and PSI need the whole empirical
  distribution to give the same numbers as on the raw rows),
* per categorical feature, and for the label: the count of each value,
* the version's predictions and the labels on its holdout (prediction drift and the bootstrap
  of the performance trigger; out-of-sample, unlike predictions on the training rows),
* the version's permutation importance of each feature on its holdout (``meta``; weighs
  drifted features, ``[drift] min_importance``),
* a bounded row sample for the Evidently HTML report.

It is stored inside the version's artifact zip (covered by the artifact's sha256), as an
``.npz`` archive read with ``allow_pickle=False``. A check then reads only the current window.
Versions registered before profiles existed fall back to reading their reference window.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from retrain.data import Schema
from retrain.data.stream import SAMPLE_SEED
from retrain.drift.window import feature_sample, label_sample
from retrain.stats.drift import (CategoricalSample, NumericSample, Sample, categorical_sample,
                                 numeric_sample)
from retrain.errors import ArtifactIntegrityError
from retrain.stats.cbpe import ESTIMATED_METRICS, Calibration, fit_calibration

if TYPE_CHECKING:
    from retrain.workspace import Workspace

log = logging.getLogger("retrain")

PROFILE_FORMAT = "retrain-profile/1"


def sample_rows(df: pl.DataFrame, max_rows: int | None, seed: int = SAMPLE_SEED) -> pl.DataFrame:
    """At most ``max_rows`` rows, drawn without replacement with a fixed seed (same rows for
    the same frame, so a profile and a recomputation see the same sample)."""
    if max_rows is None or df.height <= max_rows:
        return df
    return df.sample(n=max_rows, seed=seed)


def feature_samples(df: pl.DataFrame, schema: Schema) -> dict[str, NumericSample | CategoricalSample]:
    return {col: (categorical_sample(df.get_column(col)) if col in schema.categorical
                  else numeric_sample(df.get_column(col))) for col in schema.features}


@dataclass
class ReferenceProfile:
    """Sufficient statistics of a reference window for every drift statistic we compute."""

    schema: Schema
    features: dict[str, NumericSample | CategoricalSample]
    rows: int  # reference rows the statistics describe (after sampling)
    window_rows: int  # rows in the reference window before sampling
    max_rows: int | None  # the sampling bound in force when the profile was made
    # The labels: counts of each class, or the sorted values of a regression target.
    label: CategoricalSample | NumericSample | None = None
    # The version's scores on its holdout (retrain.stats.metrics: positive-class probabilities,
    # one column per class, or predicted values) and the labels, aligned.
    holdout_proba: np.ndarray | None = None
    holdout_labels: np.ndarray | None = None
    report_sample: pl.DataFrame | None = None  # bounded row sample for HTML reports
    meta: dict[str, Any] = field(default_factory=dict)
    # A classifier's probabilities calibrated on its holdout, for performance estimation
    # without labels (retrain.stats.cbpe); None for a regression or an older version.
    calibration: Calibration | None = None

    @property
    def importance(self) -> dict[str, float] | None:
        """The version's permutation importance of each feature (the drop of its task's
        default metric when the feature's column is shuffled, ``meta["importance"]``), or
        None for a profile made without it (older versions, a recomputed window)."""
        stored = self.meta.get("importance")
        return None if not stored else {k: float(v) for k, v in stored["values"].items()}

    def matches(self, max_rows: int | None) -> bool:
        """Whether this profile gives what recomputing with ``max_rows`` would give."""
        if self.max_rows == max_rows:
            return True
        # Neither bound sampled this window: the same rows either way.
        bound = max_rows if max_rows is not None else float("inf")
        return self.window_rows <= bound and self.window_rows == self.rows

    # Serialisation --------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        features = []
        for i, (name, sample) in enumerate(self.features.items()):
            if isinstance(sample, NumericSample):
                arrays[f"numeric_{i}"] = sample.values
                features.append({"name": name, "kind": "numeric", "integer": sample.integer,
                                 "missing": sample.missing})
            else:
                features.append({"name": name, "kind": "categorical", "keys": list(sample.keys),
                                 "counts": sample.counts.tolist(), "missing": sample.missing})
        meta = {"format": PROFILE_FORMAT, "schema": self.schema.as_dict(), "features": features,
                "rows": self.rows, "window_rows": self.window_rows, "max_rows": self.max_rows,
                "label": _label_meta(self.label, arrays),
                **{"extra": self.meta}}
        if self.holdout_proba is not None:
            arrays["holdout_proba"] = np.asarray(self.holdout_proba, dtype=np.float64)
            labels = np.asarray(self.holdout_labels)
            arrays["holdout_labels"] = labels.astype(np.float64 if labels.dtype.kind == "f"
                                                     else np.int8)
        if self.calibration is not None:
            arrays.update(self.calibration.to_arrays())
        if self.report_sample is not None:
            buf = io.BytesIO()
            self.report_sample.write_parquet(buf)
            arrays["report_sample"] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ReferenceProfile":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(arrays["meta"].tobytes())
        except (ValueError, KeyError, OSError) as exc:
            raise ArtifactIntegrityError(f"unreadable reference profile: {exc!r}") from None
        if meta.get("format") != PROFILE_FORMAT:
            raise ArtifactIntegrityError(f"unknown reference profile format {meta.get('format')!r}")
        features: dict[str, NumericSample | CategoricalSample] = {}
        for i, f in enumerate(meta["features"]):
            if f["kind"] == "numeric":
                features[f["name"]] = NumericSample(arrays[f"numeric_{i}"], f["integer"], f["missing"])
            else:
                features[f["name"]] = CategoricalSample(tuple(f["keys"]),
                                                        np.asarray(f["counts"], dtype=np.int64),
                                                        f["missing"])
        label = meta.get("label")
        report_sample = None
        if "report_sample" in arrays:
            report_sample = pl.read_parquet(io.BytesIO(arrays["report_sample"].tobytes()))
        return cls(schema=Schema.from_dict(meta["schema"]), features=features, rows=meta["rows"],
                   window_rows=meta["window_rows"], max_rows=meta["max_rows"],
                   label=_label_of(label, arrays),
                   holdout_proba=arrays.get("holdout_proba"),
                   holdout_labels=None if "holdout_labels" not in arrays
                   else _labels(arrays["holdout_labels"]),
                   report_sample=report_sample, meta=meta.get("extra") or {},
                   calibration=Calibration.from_arrays(arrays))


def build_profile(reference: pl.DataFrame, schema: Schema, *, max_rows: int | None,
                  report_rows: int, labels: pl.Series | Sample | None = None,
                  holdout_proba: np.ndarray | None = None,
                  holdout_labels: np.ndarray | None = None,
                  numeric_label: bool = False, window_rows: int | None = None) -> ReferenceProfile:
    """The profile of a reference window (``reference``: its feature columns, unsampled, or
    already sampled from a window of ``window_rows`` rows; ``labels``: the labels, or their
    sample)."""
    sampled = sample_rows(reference.select(schema.features), max_rows)
    if labels is not None and not isinstance(labels, (NumericSample, CategoricalSample)):
        labels = numeric_sample(labels) if numeric_label else categorical_sample(labels)
    return ReferenceProfile(
        schema=schema, features=feature_samples(sampled, schema), rows=sampled.height,
        window_rows=reference.height if window_rows is None else window_rows, max_rows=max_rows,
        label=labels,
        holdout_proba=holdout_proba, holdout_labels=holdout_labels,
        report_sample=sample_rows(sampled, report_rows))


def window_profile(ws: "Workspace", start: datetime, end: datetime, schema: Schema,
                   task: str = "binary") -> ReferenceProfile:
    """The profile of the window ``[start, end]`` of the feature store: all its rows for the
    features (labeled or not), its labeled rows for the label (numeric for a regression
    target). No holdout part. Read in a stream (:mod:`retrain.drift.window`): a window of
    more than ``[drift] max_rows`` rows is sampled as it is read."""
    cfg = ws.settings
    max_rows = cfg.drift.max_rows
    reference = feature_sample(ws, ws.store.rows(start, end, labeled=False), schema, max_rows)
    labels = label_sample(ws, ws.store.rows(start, end), task, max_rows)
    return build_profile(reference.frame, schema, max_rows=max_rows,
                         report_rows=cfg.drift.report_rows, labels=labels,
                         window_rows=reference.window_rows)


def with_holdout(profile: ReferenceProfile, proba: np.ndarray, labels: np.ndarray,
                 task: str | None = None) -> ReferenceProfile:
    """A copy of ``profile`` with one version's holdout scores and labels, and for a
    classifier (``task`` binary or multiclass) their calibration."""
    proba = np.asarray(proba, dtype=np.float64)
    labels = _labels(np.asarray(labels))
    calibration = None
    if task in ESTIMATED_METRICS and len(np.unique(labels[labels >= 0])) >= 2:
        calibration = fit_calibration(proba, labels, task)
    return replace(profile, holdout_proba=proba, holdout_labels=labels, calibration=calibration)


def with_importance(profile: ReferenceProfile, importance: dict[str, Any] | None
                    ) -> ReferenceProfile:
    """A copy of ``profile`` holding one version's permutation importances
    (``retrain.training.importance``); ``profile`` itself when there are none."""
    if importance is None:
        return profile
    return replace(profile, meta={**profile.meta, "importance": importance})


def _labels(values: np.ndarray) -> np.ndarray:
    """Class codes as int64, a regression target's values as float64."""
    return values.astype(np.float64 if values.dtype.kind == "f" else np.int64)


def _label_meta(label: CategoricalSample | NumericSample | None,
                arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    if label is None:
        return None
    if isinstance(label, NumericSample):
        arrays["label_values"] = label.values
        return {"kind": "numeric", "integer": label.integer, "missing": label.missing}
    return {"keys": list(label.keys), "counts": label.counts.tolist(), "missing": label.missing}


def _label_of(meta: dict[str, Any] | None, arrays: dict[str, np.ndarray]
              ) -> CategoricalSample | NumericSample | None:
    if meta is None:
        return None
    if meta.get("kind") == "numeric":
        return NumericSample(arrays["label_values"], meta["integer"], meta["missing"])
    return CategoricalSample(tuple(meta["keys"]), np.asarray(meta["counts"], dtype=np.int64),
                             meta["missing"])
