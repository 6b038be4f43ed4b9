"""Training: the training window, split by time, and candidates fitted and registered."""

from retrain.training.candidates import check_production_compatible, train_candidate
from retrain.training.data import TrainingData, TrainingSets, load_training_data, load_training_sets

__all__ = ["TrainingData", "TrainingSets", "load_training_data", "load_training_sets", "train_candidate", "check_production_compatible"]
