"""Training: the training window, split by time, and candidates fitted and registered."""

from retrain.training.candidates import check_production_compatible, train_candidate
from retrain.training.data import TrainingData, load_training_data

__all__ = ["TrainingData", "load_training_data", "train_candidate", "check_production_compatible"]
