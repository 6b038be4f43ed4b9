"""An evaluation as a record: a candidate against production on the same holdout."""

from __future__ import annotations

from typing import Literal

from retrain.records import Record
from retrain.stats.metrics import BOUNDED_BY_ONE


class MetricPair(Record):
    """Every metric of the candidate and of production (None: no production version)."""

    candidate: dict[str, float] | None = None
    production: dict[str, float] | None = None


class Interval(Record):
    """The paired interval of (challenger - champion) on the primary metric, oriented so that
    a positive difference means the challenger is better."""

    metric: str
    method: str  # delong | bootstrap
    confidence: float
    difference: float
    lower: float
    upper: float


class Guardrail(Record):
    """One guardrail metric: how much worse (relative) the candidate is, against its tolerance."""

    candidate: float
    production: float
    relative_worsening: float
    tolerance: float
    ok: bool


class Holdout(Record):
    start: str
    end: str
    rows: int


class SmokeSample(Record):
    """Holdout rows with the candidate's predictions, re-scored after a switch: where the
    file is (relative to the artifacts folder), its sha256 and its row count."""

    path: str
    sha256: str
    rows: int


class Evaluation(Record):
    """A candidate against its model's production version on the same holdout rows."""

    model: str
    candidate_version: str
    production_version: str | None = None
    metric: str
    metrics: MetricPair
    relative_improvement: float | None = None  # on improvement_basis
    improvement_basis: Literal["error", "metric"] = "metric"
    # candidate - production on the primary metric (positive: a higher value)
    metric_difference: float | None = None
    interval: Interval | None = None
    guardrails: dict[str, Guardrail] = {}
    holdout: Holdout | None = None
    smoke_sample: SmokeSample | None = None
    # Features the candidate has and production has not: its clients must send them too.
    features_added: list[str] = []

    def basis_words(self) -> str:
        """How the relative improvement was taken, when it is not of the metric itself."""
        if self.improvement_basis == "error" and self.metric in BOUNDED_BY_ONE:
            return " of the shortfall from 1"
        return ""

    @property
    def candidate_metric(self) -> float:
        return self.metrics.candidate[self.metric]

    @property
    def production_metric(self) -> float | None:
        return None if self.metrics.production is None else self.metrics.production[self.metric]
