"""Drift: the numbers are Evidently's, and the decision rules do what they say."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift import detect_drift
from retrain.errors import DataValidationError

SCHEMA = Schema(("a", "b", "c"), ("c",))


def frames(shift: float = 0.0, n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = pl.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n).astype(float),
                        "c": rng.choice(["x", "y", "z"], n)})
    cur = pl.DataFrame({"a": rng.normal(shift, size=n), "b": rng.integers(0, 5, n).astype(float),
                        "c": rng.choice(["x", "y", "z", "w"] if shift else ["x", "y", "z"], n)})
    return ref, cur


def test_ks_pvalue_is_scipys_and_psi_is_evidentlys():
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    ref, cur = frames(shift=0.2)
    # Missing values on both sides, as real data has them.
    ref = ref.with_columns(pl.when(pl.int_range(pl.len()) % 17 == 0).then(None).otherwise(pl.col("a")).alias("a"))
    cur = cur.with_columns(pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col("c")).alias("c"))
    result = detect_drift(ref, cur, SCHEMA, DriftConfig())
    by = {f.feature: f for f in result.features}
    assert by["a"].ks_pvalue == pytest.approx(
        stats.ks_2samp(ref["a"].drop_nulls(), cur["a"]).pvalue, rel=1e-9)
    definition = DataDefinition(numerical_columns=["a", "b"], categorical_columns=["c"])
    snap = Report([ValueDrift(column=c, method="psi") for c in "abc"]).run(
        current_data=Dataset.from_pandas(cur.to_pandas(), data_definition=definition),
        reference_data=Dataset.from_pandas(ref.to_pandas(), data_definition=definition))
    expected = {m["config"]["column"]: m["value"] for m in snap.dict()["metrics"]}
    for col in "abc":
        assert by[col].psi == pytest.approx(expected[col], rel=1e-9)
    assert by["c"].ks_pvalue is None and by["c"].kind == "categorical"


def test_shift_is_detected_and_stationary_data_is_not():
    shifted = detect_drift(*frames(shift=0.5), SCHEMA, DriftConfig(drift_share=0.5))
    assert shifted.detected and "a" in shifted.drifted_features and "c" in shifted.drifted_features
    assert "b" not in shifted.drifted_features
    assert shifted.share == pytest.approx(2 / 3)
    same = detect_drift(*frames(shift=0.0, seed=1), SCHEMA, DriftConfig())
    assert not same.detected and same.drifted_features == []


def test_feature_rule_both_needs_ks_and_psi():
    ref, cur = frames(shift=0.15, n=20000)  # tiny shift: KS significant, PSI small
    any_rule = detect_drift(ref, cur, SCHEMA, DriftConfig(feature_rule="any"))
    both_rule = detect_drift(ref, cur, SCHEMA, DriftConfig(feature_rule="both"))
    a_any = next(f for f in any_rule.features if f.feature == "a")
    assert a_any.ks_pvalue < 0.05 and a_any.psi < 0.2
    assert a_any.drifted
    assert not next(f for f in both_rule.features if f.feature == "a").drifted


def test_drift_share_threshold():
    ref, cur = frames(shift=0.5)
    assert detect_drift(ref, cur, SCHEMA, DriftConfig(drift_share=0.6)).detected
    assert not detect_drift(ref, cur, SCHEMA, DriftConfig(drift_share=0.7)).detected


def test_large_windows_are_sampled_to_max_rows():
    ref, cur = frames(shift=0.5, n=3000)
    result = detect_drift(ref, cur, SCHEMA, DriftConfig(max_rows=1000))
    assert result.reference_rows == 1000 and result.current_rows == 1000
    assert result.detected


def test_empty_windows_are_errors():
    ref, cur = frames()
    with pytest.raises(DataValidationError, match="reference window is empty"):
        detect_drift(ref.head(0), cur, SCHEMA, DriftConfig())
    with pytest.raises(DataValidationError, match="no rows newer"):
        detect_drift(ref, cur.head(0), SCHEMA, DriftConfig())
