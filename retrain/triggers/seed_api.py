"""``RetrainingTriggers``: the seed's ``should_retrain(...) -> (bool, info)`` on the checks."""

from __future__ import annotations

from typing import Any

from retrain.drift.check import check_drift as _drift_check
from retrain.triggers.performance import check_performance as _performance_check
from retrain.triggers.volume import check_volume as _volume_check
from retrain.workspace import Workspace


class RetrainingTriggers:
    """Decide whether to retrain (the seed's API): ``should_retrain(...) -> (bool, info)``."""

    def __init__(self, config=None, workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.open(config)

    def should_retrain(self, check_drift: bool = True, check_volume: bool = True,
                       check_performance: bool = False, models: list[str] | None = None
                       ) -> tuple[bool, dict[str, Any]]:
        ws = self.workspace
        per_model: dict[str, dict[str, Any]] = {}
        reasons: list[str] = []
        for name in ws.model_names(models):
            entry: dict[str, Any] = {"reasons": []}
            if ws.registry.production_version(name) is None:
                entry["reasons"].append("bootstrap")
            if check_drift:
                drift = _drift_check(ws, name)
                entry["drift"] = drift.as_dict()
                if drift.detected:
                    entry["reasons"].append("drift")
            if check_volume:
                volume = _volume_check(ws, name)
                entry["volume"] = volume.as_dict()
                if volume.met:
                    entry["reasons"].append("volume")
            if check_performance:
                perf = _performance_check(ws, name)
                entry["performance"] = perf.as_dict()
                if perf.triggered:
                    entry["reasons"].append("performance")
            entry["retrain"] = bool(entry["reasons"])
            per_model[name] = entry
            reasons.extend(r for r in entry["reasons"] if r not in reasons)
        info = {"trigger_reason": ", ".join(reasons) if reasons else None,
                "models": per_model,
                "models_to_retrain": [n for n, e in per_model.items() if e["retrain"]]}
        return bool(reasons), info
