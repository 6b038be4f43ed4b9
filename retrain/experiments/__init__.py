"""A/B tests and gradual rollouts: sticky routing between two versions of a model, the
prediction log and feedback, always-valid significance, and guarded rollout steps."""

from retrain.experiments.manager import ABTestingManager
from retrain.experiments.routing import Route, bucket

__all__ = ["ABTestingManager", "Route", "bucket"]
