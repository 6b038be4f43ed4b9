"""The run's trigger checks together: per model its drift, volume and (when checked)
performance check, what fired, and the ``triggers`` section of the run document."""

from __future__ import annotations

from dataclasses import dataclass
from pydantic import Field

from retrain.drift.check import DriftCheck
from retrain.drift.results import ModelDrift
from retrain.records import Record
from retrain.triggers.performance import PerformanceCheck
from retrain.triggers.volume import VolumeCheck


class DriftTriggers(Record):
    """Drift over the run's models: detected for any of them, and every drifted feature."""

    detected: bool
    drifted_features: list[str]
    models: dict[str, ModelDrift]


class VolumeTriggers(Record):
    """New labeled rows: the largest count over the run's models against the threshold."""

    met: bool
    new_rows: int
    threshold: int | None
    models: dict[str, VolumeCheck]


class PerformanceTriggers(Record):
    triggered: bool
    models: dict[str, PerformanceCheck]


class Triggers(Record):
    """The run's checks. ``performance`` is absent when the performance trigger was not
    checked (``[triggers] check_performance``)."""

    drift: DriftTriggers
    volume: VolumeTriggers
    performance: PerformanceTriggers | None = Field(default=None, exclude_if=lambda v: v is None)


@dataclass
class TriggerReport:
    """The checks of one run, by model. ``performance`` is None when it was not checked."""

    drift: dict[str, DriftCheck]
    volume: dict[str, VolumeCheck]
    performance: dict[str, PerformanceCheck] | None = None

    def fired(self, name: str) -> list[str]:
        """The triggers that fired for ``name``: drift, volume, performance (in that order)."""
        fired = []
        if self.drift[name].detected:
            fired.append("drift")
        if self.volume[name].met:
            fired.append("volume")
        if self.performance is not None and self.performance[name].triggered:
            fired.append("performance")
        return fired

    def skip_reason(self, name: str) -> str:
        """Why ``name`` was not retrained, with the numbers."""
        drift, volume = self.drift[name], self.volume[name]
        result = drift.result
        rule = result.decision if result is not None else "share"
        drift_note = drift.note or (
            f"drift share {drift.share:.2f}" if rule == "share"
            else f"{rule}: {len(drift.drifted_features)} of {len(result.features)} features drifted")
        parts = [f"no drift ({drift_note})", f"{volume.new_rows} new rows < {volume.threshold}"]
        if self.performance is not None:
            parts.append("no performance drop")
        return "no trigger fired: " + ", ".join(parts)

    def summary(self) -> Triggers:
        """The ``triggers`` section of the run document."""
        drift = {name: check.summary() for name, check in self.drift.items()}
        volume = self.volume
        performance = None
        if self.performance is not None:
            performance = PerformanceTriggers(
                triggered=any(p.triggered for p in self.performance.values()),
                models=dict(self.performance))
        return Triggers(
            drift=DriftTriggers(
                detected=any(d.detected for d in drift.values()),
                drifted_features=sorted({f for d in drift.values() for f in d.drifted_features}),
                models=drift),
            volume=VolumeTriggers(
                met=any(v.met for v in volume.values()),
                new_rows=max((v.new_rows for v in volume.values()), default=0),
                threshold=next(iter(volume.values())).threshold if volume else None,
                models=dict(volume)),
            performance=performance)
