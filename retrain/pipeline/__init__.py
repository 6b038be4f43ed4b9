"""One retraining run: its steps, their order, and the run document."""

from retrain.pipeline.seed_api import AutomatedRetrainingPipeline
from retrain.pipeline.steps import deploy_step, evaluate_step, retrain_step, run_pipeline

__all__ = ["run_pipeline", "AutomatedRetrainingPipeline", "retrain_step", "evaluate_step",
           "deploy_step"]
