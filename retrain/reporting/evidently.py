"""Evidently's view of a drift check: its DataDriftPreset report on two bounded samples, as
HTML and as a JSON snapshot (strings; the drift check writes them beside its own numbers)."""

from __future__ import annotations

import warnings

import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.stats.drift import evidently_methods


def evidently_methods_for(config: DriftConfig) -> tuple[str, str]:
    """The Evidently methods that show our check in its report: (numeric, categorical)."""
    known = set(evidently_methods())
    numeric = "ks" if ("ks" in config.methods or config.decision != "share") else next(
        (m for m in config.methods if m in known), "ks")
    categorical = "psi" if "psi" in config.methods or "psi_quantile" in config.methods else next(
        (m for m in config.methods if m in known and m != "ks"), "psi")
    return numeric, categorical


def render_evidently(reference: pl.DataFrame, current: pl.DataFrame, schema: Schema,
                     config: DriftConfig) -> tuple[str, str]:
    """Evidently's DataDriftPreset on two (small) frames: ``(html, snapshot_json)``."""
    # Late: Evidently takes seconds to import and only the HTML report needs it.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = evidently_methods_for(config)
    thresholds = {"ks": config.ks_pvalue_threshold, "psi": config.psi_threshold,
                  **config.thresholds}
    definition = DataDefinition(numerical_columns=list(schema.numeric),
                                categorical_columns=list(schema.categorical))
    preset = DataDriftPreset(columns=list(schema.features), drift_share=config.drift_share,
                             num_method=numeric, cat_method=categorical,
                             num_threshold=thresholds.get(numeric),
                             cat_threshold=thresholds.get(categorical))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([preset]).run(
            current_data=Dataset.from_pandas(current.select(schema.features).to_pandas(),
                                             data_definition=definition),
            reference_data=Dataset.from_pandas(reference.select(schema.features).to_pandas(),
                                               data_definition=definition))
        return snap.get_html_str(as_iframe=False), snap.json()
