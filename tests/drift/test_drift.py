"""Drift statistics: our KS and PSI are Evidently's numbers (checked against Evidently's own
Report), on awkward data; decisions do what they say; the Python API's shape."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift import compute_drift, detect_drift
from retrain.stats.drift import (categorical_sample, kstwo_sf, numeric_sample, psi, psi_quantile,
                                 smirnov_sum, sturges_edges)
from retrain.errors import ConfigError, DataValidationError

SCHEMA = Schema(("a", "b", "c"), ("c",))


def evidently_values(reference: pl.DataFrame, current: pl.DataFrame, numeric: list[str],
                     categorical: list[str], methods: dict[str, list[str]]) -> dict:
    """``{(column, method): value}`` from Evidently's Report with one ValueDrift per column and
    method: the code path of its DataDriftPreset, including its NaN handling."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    metrics = [ValueDrift(column=c, method=m) for m, cols in methods.items() for c in cols]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report(metrics).run(
            current_data=Dataset.from_pandas(current.to_pandas(), data_definition=definition),
            reference_data=Dataset.from_pandas(reference.to_pandas(), data_definition=definition))
    return {(m["config"]["column"], m["config"]["method"]): m["value"] for m in snap.dict()["metrics"]}


def awkward_frames(n_ref: int, n_cur: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ties, NaN and nulls, constant columns, few-valued and many-valued integers, a shift,
    categories on one side only."""
    rng = np.random.default_rng(seed)

    def side(n: int, cur: bool) -> pl.DataFrame:
        with_nan = rng.normal(size=n)
        with_nan[rng.random(n) < 0.1] = np.nan
        return pl.DataFrame({
            "ties": rng.normal(0.1 if cur else 0, 1, n).round(1),
            "nan": pl.Series(with_nan).set(pl.Series(rng.random(n) < 0.05), None),
            "const": np.full(n, 3.0),
            "const_ref": rng.normal(size=n) if cur else np.full(n, 1.0),
            "int_few": rng.integers(1, 7, n) if cur else rng.integers(0, 5, n),
            "int_many": rng.integers(0, 40 if cur else 30, n),
            "shift": rng.normal(0.08 if cur else 0.0, 1, n),
            "cat": pl.Series(rng.choice(["x", "y", "w"] if cur else ["x", "y", "z"], n).tolist())
            .set(pl.Series(rng.random(n) < 0.07), None),
        })

    return side(n_ref, False), side(n_cur, True)


NUMERIC = ["ties", "nan", "const", "const_ref", "int_few", "int_many", "shift"]


def assert_equal_to_evidently(reference, current, numeric, categorical):
    expected = evidently_values(reference, current, numeric, categorical,
                                {"ks": numeric, "psi": numeric + categorical})
    report = compute_drift(reference, current, methods=("ks", "psi"), categorical=categorical,
                           decision="share")
    ours = {(r.feature, r.method): r.value for r in report.rows}
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=0), key
    return ours


def test_ks_and_psi_equal_evidentlys_report_on_awkward_small_data():
    """Small windows: scipy's exact KS p-value; every PSI path."""
    reference, current = awkward_frames(3000, 2500)
    ours = assert_equal_to_evidently(reference, current, NUMERIC, ["cat"])
    assert ours[("const", "ks")] == 1.0 and ours[("const", "psi")] == 0.0


def test_ks_and_psi_equal_evidentlys_report_on_large_data():
    """Over 10 000 rows KS is asymptotic; at this size a shifted column takes the vectorised
    Smirnov sum (an effective n of 22 500 and n * D^2 in [2.2, 370))."""
    reference, current = awkward_frames(45_000, 45_000, seed=1)
    columns = ["nan", "int_many", "shift"]
    ours = assert_equal_to_evidently(reference.select(columns), current.select(columns), columns, [])
    d = stats.ks_2samp(reference["shift"], current["shift"]).statistic
    assert 2.2 <= 22_500 * d * d < 370 and ours[("shift", "ks")] > 0


def test_integer_columns_get_numpys_integer_sturges_bins():
    """numpy widens Sturges bins narrower than 1 to 1 for integer data (ptp 20, 600 000 rows):
    an integer column without nulls is binned as pandas holds it, as int64."""
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(2)
    ref, cur = rng.integers(0, 21, 300_000), rng.integers(0, 21, 300_000)
    cur[:3000] = 0
    as_int = psi(numeric_sample(pl.Series(ref)), numeric_sample(pl.Series(cur)))
    as_float = psi(numeric_sample(pl.Series(ref.astype(float))), numeric_sample(pl.Series(cur.astype(float))))
    for values, ours in ((ref, as_int), (ref.astype(float), as_float)):
        expected = psi_stat_test(pd.Series(values), pd.Series(cur.astype(values.dtype)),
                                 ColumnType.Numerical, 0.1).drift_score
        assert ours == pytest.approx(expected, rel=1e-9)
    assert as_int != as_float


@pytest.mark.parametrize("integer", [False, True])
def test_sturges_edges_are_numpys(integer):
    rng = np.random.default_rng(3)
    for size in (25, 1000, 70_000):
        data = rng.integers(-50, 50, size) if integer else rng.normal(size=size) * 10
        expected = np.histogram_bin_edges(data, bins="sturges")
        ours = sturges_edges(float(data.min()), float(data.max()), size, integer)
        np.testing.assert_array_equal(ours, expected)


def test_fast_smirnov_sum_agrees_with_scipy():
    rng = np.random.default_rng(4)
    for _ in range(12):
        n = float(rng.integers(20_000, 60_000))
        d = np.sqrt(rng.uniform(2.2, 300) / n)
        assert kstwo_sf(d, n) == pytest.approx(stats.kstwo.sf(d, n), rel=1e-11)
    assert kstwo_sf(0.001, 50_000.0) == stats.kstwo.sf(0.001, 50_000.0)  # scipy's own path


def test_smirnov_sum_over_the_terms_that_matter_is_the_full_sum():
    """Terms left out by the coarse grid change the sum by rounding only, across the range of
    n d^2 the vectorised sum serves and up to the largest windows."""
    import math

    for n in (30_000, 200_000, 500_000):
        for nd2 in (2.2, 5.0, 40.0, 200.0, 360.0):
            d = math.sqrt(nd2 / n)
            v = np.arange(0, n - math.floor(n * d), dtype=np.float64)
            p = d + v / n
            full = float(d * np.sum(stats.binom.pmf(v, n, p) / p))
            assert smirnov_sum(n, d) == pytest.approx(full, rel=1e-14, abs=0), (n, nd2)


def test_a_sample_sorted_into_a_buffer_is_the_sample_sorted_afresh():
    rng = np.random.default_rng(8)
    values = rng.normal(size=1000)
    values[rng.random(1000) < 0.05] = np.nan
    values[:3] = [np.inf, -np.inf, np.inf]
    with_nulls = pl.Series(values).set(pl.Series(rng.random(1000) < 0.05), None)
    buffer = np.full(1500, 7.0)  # longer than the column, holding another column's values
    for column in (pl.Series(values), with_nulls, pl.Series(rng.integers(0, 9, 1000)),
                   pd.Series(values), values):
        fresh, into = numeric_sample(column), numeric_sample(column, out=buffer)
        np.testing.assert_array_equal(into.values, fresh.values)
        assert (into.missing, into.integer) == (fresh.missing, fresh.integer)
        assert np.shares_memory(into.values, buffer)


def test_other_evidently_methods_by_name():
    reference, current = awkward_frames(1500, 1500, seed=5)
    reference, current = reference.select("shift", "cat"), current.select("shift", "cat")
    expected = evidently_values(reference, current, ["shift"], ["cat"],
                                {"wasserstein": ["shift"], "jensenshannon": ["shift", "cat"]})
    report = compute_drift(reference, current, methods=("wasserstein", "jensenshannon"),
                           decision="share")
    ours = {(r.feature, r.method): r.value for r in report.rows}
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-9)
    with pytest.raises(ConfigError, match="unknown drift method 'nope'"):
        compute_drift(reference, current, methods=("nope",))


def test_quantile_psi_uses_reference_deciles():
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=5000), rng.normal(0.3, 1.2, size=4000)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    bins_ref = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / ref.size
    bins_cur = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / cur.size
    expected = np.sum((bins_ref - bins_cur) * np.log(bins_ref / bins_cur))
    ours = psi_quantile(numeric_sample(ref), numeric_sample(cur))
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours != psi(numeric_sample(ref), numeric_sample(cur))  # a different statistic
    table = compute_drift(pl.DataFrame({"x": ref}), pl.DataFrame({"x": cur}),
                          methods=("psi_quantile",), decision="share").table()
    assert table.row(0, named=True)["method"] == "psi_quantile"


def test_api_accepts_polars_and_pandas_and_returns_the_table():
    reference, current = awkward_frames(800, 900, seed=7)
    from_polars = compute_drift(reference, current)
    from_pandas = compute_drift(reference.to_pandas(), current.to_pandas())
    assert from_polars.table().columns == ["feature", "method", "value", "threshold", "drifted",
                                             "effect", "held_back"]
    assert from_polars.table().equals(from_pandas.table())
    assert isinstance(from_polars.drifted, bool) and from_polars.drifted == from_polars.detected
    assert {f.feature for f in from_polars.features} == set(reference.columns)


def frames(shift: float = 0.0, n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = pl.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n).astype(float),
                        "c": rng.choice(["x", "y", "z"], n)})
    cur = pl.DataFrame({"a": rng.normal(shift, size=n), "b": rng.integers(0, 5, n).astype(float),
                        "c": rng.choice(["x", "y", "z", "w"] if shift else ["x", "y", "z"], n)})
    return ref, cur


SHARE = DriftConfig(decision="share")


def test_share_rule_detects_a_shift_and_not_stationary_data():
    shifted = detect_drift(*frames(shift=0.5), SCHEMA, SHARE.model_copy(update={"drift_share": 0.5}))
    assert shifted.detected and {"a", "c"} <= set(shifted.drifted_features)
    assert "b" not in shifted.drifted_features and shifted.share == pytest.approx(2 / 3)
    same = detect_drift(*frames(shift=0.0, seed=1), SCHEMA, SHARE)
    assert not same.detected and same.drifted_features == []


def test_feature_rule_both_needs_ks_and_psi():
    ref, cur = frames(shift=0.15, n=20000)  # tiny shift: KS significant, PSI small
    any_rule = detect_drift(ref, cur, SCHEMA, SHARE.model_copy(update={"feature_rule": "any"}))
    both_rule = detect_drift(ref, cur, SCHEMA, SHARE.model_copy(update={"feature_rule": "both"}))
    a_any = next(f for f in any_rule.features if f.feature == "a")
    assert a_any.ks_pvalue <= 0.05 and a_any.psi < 0.2 and a_any.drifted
    assert not next(f for f in both_rule.features if f.feature == "a").drifted


def test_drift_share_threshold():
    ref, cur = frames(shift=0.5)
    assert detect_drift(ref, cur, SCHEMA, SHARE.model_copy(update={"drift_share": 0.6})).detected
    assert not detect_drift(ref, cur, SCHEMA, SHARE.model_copy(update={"drift_share": 0.7})).detected


def test_corrected_rules_hold_each_p_value_to_the_corrected_threshold():
    ref, cur = frames(shift=0.5)
    for decision in ("bh", "bonferroni"):
        report = detect_drift(ref, cur, SCHEMA, DriftConfig(decision=decision))
        tests = {r.feature: r for r in report.rows if r.method in ("ks", "chi2_homogeneity")}
        assert set(tests) == {"a", "b", "c"}  # categorical c gets the chi-square test
        for r in tests.values():
            assert r.drifted == (r.value <= r.threshold)
            assert (r.feature in report.drifted_features) == r.drifted
        assert report.detected and set(report.drifted_features) == {"a", "c"}
    bonferroni = detect_drift(ref, cur, SCHEMA, DriftConfig(decision="bonferroni"))
    assert all(r.threshold == pytest.approx(0.05 / 3) for r in bonferroni.rows if r.method == "ks")


def test_large_windows_are_sampled_to_max_rows():
    ref, cur = frames(shift=0.5, n=3000)
    result = detect_drift(ref, cur, SCHEMA, DriftConfig(max_rows=1000))
    assert result.reference_rows == 1000 and result.current_rows == 1000
    assert result.detected


def test_empty_windows_and_all_null_columns_are_errors():
    ref, cur = frames()
    with pytest.raises(DataValidationError, match="reference window is empty"):
        detect_drift(ref.head(0), cur, SCHEMA, DriftConfig())
    with pytest.raises(DataValidationError, match="no rows newer"):
        detect_drift(ref, cur.head(0), SCHEMA, DriftConfig())
    with pytest.raises(DataValidationError, match="'a'.*all values are null in the drift current"):
        compute_drift(ref, cur.with_columns(pl.lit(None, dtype=pl.Float64).alias("a")))


def test_categorical_samples_keep_one_sided_categories():
    ref = categorical_sample(pl.Series(["x", "x", "y", None]))
    cur = categorical_sample(pl.Series(["y", "z", "z"]))
    assert ref.as_dict() == {"x": 2, "y": 1} and ref.missing == 1
    assert psi(ref, cur) > 1  # x and z each on one side only
