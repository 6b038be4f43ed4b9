"""``AutomatedRetrainingPipeline``: the seed's pipeline API on the library's stages, in the
seed's dictionaries."""

from __future__ import annotations

from typing import Any

from retrain.evaluation.evaluate import evaluate_candidates
from retrain.pipeline.run import run_pipeline
from retrain.training.candidates import train_candidates
from retrain.training.data import TrainingData, load_training_data
from retrain.workspace import Workspace


class AutomatedRetrainingPipeline:
    """The seed's pipeline API on top of the library steps."""

    def __init__(self, config=None, workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.open(config)
        self._data: TrainingData | None = None

    def retrain_all_models(self, models: list[str] | None = None, reason: str = "manual") -> dict[str, Any]:
        """Train one candidate per model on the current training window and register it."""
        ws = self.workspace
        names = ws.model_names(models)
        self._data = load_training_data(ws)
        trained = train_candidates(ws, names, self._data, reason)
        return {"success": all(t.error is None for t in trained.values()),
                "models": {n: t.to_dict() for n, t in trained.items()},
                "data": self._data.summary()}

    def evaluate_new_models(self, results: dict[str, Any]) -> dict[str, Any]:
        """Compare each new candidate with its production version on the same holdout."""
        data = self._data or load_training_data(self.workspace)
        evaluations = evaluate_candidates(self.workspace, results["models"], data)
        return {"summary": {"models_evaluated": len(evaluations),
                            "metric": self.workspace.settings.promotion.metric_for(data.task)},
                "models": {n: e.to_dict() for n, e in evaluations.items()}}

    def run(self, models: list[str] | None = None, force: bool = False, reason: str = "manual",
            check_performance: bool | None = None) -> dict[str, Any]:
        """One whole run (``run_pipeline``); its document as a dictionary."""
        return run_pipeline(self.workspace, models, force=force, reason=reason,
                            check_performance=check_performance).to_dict()
