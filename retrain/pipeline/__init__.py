"""One retraining run: its steps, their order (written once, in ``run``), the runner that
calls them, and the run document."""

from retrain.lazy import lazy_exports

_EXPORTS = {
    "run_pipeline": "retrain.pipeline.run",
    "run_drift_check": "retrain.pipeline.run",
    "RunContext": "retrain.pipeline.context",
    "RunDocument": "retrain.pipeline.document",
    "DirectRunner": "retrain.pipeline.runner",
    "AutomatedRetrainingPipeline": "retrain.pipeline.seed_api",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
