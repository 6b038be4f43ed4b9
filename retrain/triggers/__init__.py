"""Retraining triggers: data volume, drift and performance degradation.

Each check compares the data with one model's production version: its training window is the
reference, the rows newer than it are the current data. The drift check itself lives in
``retrain.drift.check``.
"""

from retrain.drift.check import DriftCheck, check_drift
from retrain.triggers.performance import PerformanceCheck, check_performance
from retrain.triggers.seed_api import RetrainingTriggers
from retrain.triggers.volume import VolumeCheck, check_volume

__all__ = ["VolumeCheck", "DriftCheck", "PerformanceCheck", "check_volume", "check_drift",
           "check_performance", "RetrainingTriggers"]
