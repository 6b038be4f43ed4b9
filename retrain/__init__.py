"""retrain: automated retraining for tabular ML models.

The library does the work and knows nothing about the orchestrator; ``flows/`` wraps it in
Prefect flows.
"""

from retrain.config import Settings, load_config
from retrain.experiments import ABTestingManager, RolloutStrategy
from retrain.errors import (ArtifactIntegrityError, ConfigError, DataValidationError,
                            RegistryError, RetrainError)
from retrain.notify import NotificationService
from retrain.pipeline import AutomatedRetrainingPipeline
from retrain.promotion import ModelPromoter
from retrain.registry import Registry
from retrain.triggers import RetrainingTriggers
from retrain.workspace import Workspace

__all__ = [
    "AutomatedRetrainingPipeline", "RetrainingTriggers", "ModelPromoter", "NotificationService", "Registry",
    "ABTestingManager", "RolloutStrategy",
    "Workspace", "Settings", "load_config", "RetrainError", "ConfigError",
    "DataValidationError", "RegistryError", "ArtifactIntegrityError",
]
__version__ = "0.1.0"
