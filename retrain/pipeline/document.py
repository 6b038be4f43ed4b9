"""The run document: what one pipeline run found and decided, per model.

``run_pipeline`` (and the ``retraining-pipeline`` flow) returns a :class:`RunDocument`;
``retrain run --json`` prints its ``to_dict()``; the dashboard's summary, the report files and
the summary notification are rendered from it. Its JSON Schema is generated from these types
(:func:`json_schema`) and committed as ``docs/run-document.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from retrain.evaluation.results import MetricPair
from retrain.promotion.results import DecisionName
from retrain.records import Record
from retrain.triggers.report import DriftTriggers, PerformanceTriggers, Triggers, VolumeTriggers


class Window(Record):
    start: str
    end: str


class DataSummary(Record):
    """The training window the candidates were trained on and its split."""

    window: Window
    train_rows: int
    holdout_rows: int
    holdout: Window
    features: list[str]
    fingerprint: str
    rows_without_timestamp: int = 0  # in the feature store, left out (see [data])
    task: Literal["binary", "multiclass", "regression"] = "binary"  # of the target


class ModelOutcome(Record):
    """One model's part of the run: why it was (not) retrained, its candidate against
    production, and the decision."""

    production_version_before: str | None
    production_version_after: str | None
    candidate_version: str | None = None
    decision: DecisionName = "skipped"
    reason: str = ""
    trigger: str | None = None  # why it was retrained: "bootstrap", "drift, volume", "forced"
    metric: str | None = None
    metrics: MetricPair = MetricPair()
    relative_improvement: float | None = None  # on improvement_basis
    improvement_basis: Literal["error", "metric"] | None = None
    metric_difference: float | None = None  # candidate - production on the primary metric
    # New columns of the data: taken by the candidate ([data] new_columns = "include"), or
    # left out (the default, "ignore").
    features_added: list[str] = []
    new_columns_ignored: list[str] = []


class RunDocument(Record):
    """One pipeline run. ``success`` is false when a model's part failed (training, or a
    production version that changed while the run evaluated against it)."""

    reason: str
    forced: bool
    started_at: str | None
    finished_at: str
    triggers: Triggers
    retrained: bool
    # The training window: of the [data] dataset, or of the only dataset trained on.
    data: DataSummary | None = None
    # Every dataset's training window, by dataset name ("data" for the [data] section).
    datasets: dict[str, DataSummary] = {}
    models: dict[str, ModelOutcome]
    success: bool
    # Candidates that an earlier run registered and stopped before deciding (its process was
    # killed), rejected by this run and audited as abandoned.
    abandoned_candidates: list[str] = []

    def model_view(self, name: str) -> "RunDocument":
        """The document narrowed to one model (its own report file and dashboard summary)."""
        t = self.triggers
        drift, volume = t.drift.models[name], t.volume.models[name]
        performance = None
        if t.performance is not None:
            check = t.performance.models[name]
            performance = PerformanceTriggers(triggered=check.triggered, models={name: check})
        triggers = Triggers(
            drift=DriftTriggers(detected=drift.detected, drifted_features=drift.drifted_features,
                                models={name: drift}),
            volume=VolumeTriggers(met=volume.met, new_rows=volume.new_rows,
                                  threshold=volume.threshold, models={name: volume}),
            performance=performance)
        return self.model_copy(update={"triggers": triggers, "models": {name: self.models[name]}})


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``RunDocument.to_dict()``."""
    schema = RunDocument.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m retrain.pipeline.document > docs/run-document.schema.json
    print(json_schema_text(), end="")
