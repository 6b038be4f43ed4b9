"""The feature store: append-only rows with a timestamp, read lazily with polars; schemas,
windows, validation and the temporal split."""

from retrain.data.schema import Schema, Window, dtype_family
from retrain.data.store import FeatureStore
from retrain.data.validation import fingerprint, temporal_split, validate_frame, validate_window

__all__ = ["FeatureStore", "Schema", "Window", "dtype_family", "fingerprint", "temporal_split",
           "validate_frame", "validate_window"]
