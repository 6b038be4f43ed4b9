"""``AutomatedRetrainingPipeline``: the seed's pipeline API on the library's stages, in the
seed's dictionaries."""

from __future__ import annotations

from typing import Any

from retrain.config import DEFAULT_DATASET
from retrain.evaluation.evaluate import evaluate_candidates
from retrain.pipeline.run import run_pipeline
from retrain.training.candidates import train_candidates
from retrain.training.data import TrainingSets, load_training_sets
from retrain.workspace import Workspace


class AutomatedRetrainingPipeline:
    """The seed's pipeline API on top of the library steps."""

    def __init__(self, config=None, workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.open(config)
        self._data: TrainingSets | None = None

    def retrain_all_models(self, models: list[str] | None = None, reason: str = "manual") -> dict[str, Any]:
        """Train one candidate per model on the current training window and register it."""
        ws = self.workspace
        names = ws.model_names(models)
        self._data = load_training_sets(ws, names)
        trained = train_candidates(ws, names, self._data, reason)
        windows = {d: w.summary() for d, w in self._data.by_dataset.items()}
        return {"success": all(t.error is None for t in trained.values()),
                "models": {n: t.to_dict() for n, t in trained.items()},
                "data": windows.get(DEFAULT_DATASET) or next(iter(windows.values())),
                "datasets": windows}

    def evaluate_new_models(self, results: dict[str, Any]) -> dict[str, Any]:
        """Compare each new candidate with its production version on the same holdout."""
        data = self._data or load_training_sets(self.workspace, list(results["models"]))
        evaluations = evaluate_candidates(self.workspace, results["models"], data)
        return {"summary": {"models_evaluated": len(evaluations),
                            "metric": ", ".join(sorted({e.metric for e in evaluations.values()}))
                            or self.workspace.settings.promotion.metric_for("binary")},
                "models": {n: e.to_dict() for n, e in evaluations.items()}}

    def run(self, models: list[str] | None = None, force: bool = False, reason: str = "manual",
            check_performance: bool | None = None) -> dict[str, Any]:
        """One whole run (``run_pipeline``); its document as a dictionary."""
        return run_pipeline(self.workspace, models, force=force, reason=reason,
                            check_performance=check_performance).to_dict()
