"""retrain: automated retraining for tabular ML models.

The library does the work and knows nothing about the orchestrator; ``retrain_prefect`` runs
its steps as Prefect flows. Public names are imported on first use (``retrain.lazy``).
"""

from retrain.lazy import lazy_exports

_EXPORTS = {
    "AutomatedRetrainingPipeline": "retrain.pipeline.seed_api",
    "RetrainingTriggers": "retrain.triggers.seed_api",
    "ModelPromoter": "retrain.promotion.promoter",
    "NotificationService": "retrain.notify.service",
    "Registry": "retrain.registry.registry",
    "ABTestingManager": "retrain.experiments.manager",
    "RolloutStrategy": "retrain.experiments.rollout",
    "Workspace": "retrain.workspace",
    "Settings": "retrain.config",
    "load_config": "retrain.config",
    "compute_drift": "retrain.drift.compute",
    "RetrainError": "retrain.errors",
    "ConfigError": "retrain.errors",
    "DataValidationError": "retrain.errors",
    "RegistryError": "retrain.errors",
    "ArtifactIntegrityError": "retrain.errors",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
__version__ = "0.1.0"
