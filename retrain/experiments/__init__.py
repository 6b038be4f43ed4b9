"""A/B tests and gradual rollouts: sticky routing between two versions of a model, the
prediction log and feedback, always-valid significance, and guarded rollout steps."""

from retrain.experiments.manager import ABTestingManager
from retrain.experiments.rollout import RolloutStrategy, advance_rollouts, build_schedule
from retrain.experiments.rollout_control import (abort_rollout, pause_rollout, resume_rollout,
                                                 rollout_status)
from retrain.experiments.routing import Route, bucket

__all__ = ["ABTestingManager", "Route", "bucket", "RolloutStrategy", "advance_rollouts",
           "build_schedule", "pause_rollout", "resume_rollout", "abort_rollout", "rollout_status"]
