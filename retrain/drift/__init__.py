"""Drift: per-feature statistics and the dataset decision (``compute_drift``), the reference
profile stored with each version, and the drift check of one model."""

from retrain.drift.compute import (DriftReport, DriftResult, FeatureDrift, MethodResult,
                                   benjamini_hochberg_cutoff, compute_drift, detect_drift,
                                   pvalue_cutoff)

__all__ = ["compute_drift", "detect_drift", "DriftReport", "DriftResult", "FeatureDrift",
           "MethodResult", "benjamini_hochberg_cutoff", "pvalue_cutoff"]
