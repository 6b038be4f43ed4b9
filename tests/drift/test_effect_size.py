"""The effect-size gate ``[drift] min_effect``: on a million rows a p-value test finds a shift of
0.02 standard deviations, which does not matter; the gate (KS statistic >= 0.05 by default)
keeps the alarm for a shift of 0.3 standard deviations, which does."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from scipy import stats

from retrain.config import DriftConfig
from retrain.drift import compute_drift

ROWS, FEATURES = 1_000_000, 20
TINY = [f"x{i}" for i in range(5)]  # shifted by 0.02 sd
LARGE = "x10"  # shifted by 0.3 sd in the second case


@pytest.fixture(scope="module")
def million_rows():
    """1M rows per side, 20 N(0, 1) features, five of them shifted by 0.02 sd."""
    rng = np.random.default_rng(1)
    reference = pl.DataFrame({f"x{i}": rng.standard_normal(ROWS) for i in range(FEATURES)})
    current = pl.DataFrame({f"x{i}": rng.standard_normal(ROWS) + (0.02 if f"x{i}" in TINY else 0)
                            for i in range(FEATURES)})
    return reference, current


def test_tiny_shifts_on_a_million_rows_raise_no_alarm(million_rows):
    reference, current = million_rows
    report = compute_drift(reference, current)  # defaults: bh at 0.05, min_effect 0.05
    assert DriftConfig().min_effect == 0.05 and report.thresholds["min_effect"] == 0.05
    assert not report.detected and report.drifted_features == []
    by_name = {f.feature: f for f in report.features}
    for name in TINY:  # overwhelming evidence of a negligible shift: held back by its size
        f = by_name[name]
        assert f.pvalue < 1e-15 and f.effect < 0.015
        assert f.held_back and not f.drifted
    ks_rows = [r for r in report.rows if r.method == "ks" and r.feature in TINY]
    assert all(r.held_back and not r.drifted and r.value <= r.threshold for r in ks_rows)
    assert not any(by_name[f"x{i}"].held_back for i in range(5, FEATURES))

    # Without the gate, the p-value rule alone (today's behaviour) alarms on them.
    ungated = compute_drift(reference, current, min_effect=0)
    assert ungated.detected and ungated.drifted_features == TINY
    assert not any(f.held_back for f in ungated.features)


def test_a_shift_of_a_third_of_a_standard_deviation_alarms_naming_it(million_rows):
    reference, current = million_rows
    current = current.with_columns(pl.col(LARGE) + 0.3)
    report = compute_drift(reference, current)
    assert report.detected and report.drifted_features == [LARGE]
    f = next(f for f in report.features if f.feature == LARGE)
    # 2 * Phi(0.15) - 1 = 0.119: the KS statistic of a 0.3 sd shift of a normal.
    assert f.effect == pytest.approx(2 * stats.norm.cdf(0.15) - 1, abs=0.003)
    assert f.rank == 1 and not f.held_back
    # PSI, for comparison, stays below Evidently's 0.1 (and our default 0.2) on this shift.
    assert f.psi < 0.1


def test_with_min_effect_zero_the_decision_is_benjamini_hochbergs_over_scipys_p_values():
    rng = np.random.default_rng(3)
    n = 20_000
    shifts = [0.0] * 6 + [0.01, 0.02, 0.03, 0.05]
    reference = pl.DataFrame({f"x{i}": rng.standard_normal(n) for i in range(len(shifts))})
    current = pl.DataFrame({f"x{i}": rng.standard_normal(n) + s for i, s in enumerate(shifts)})
    report = compute_drift(reference, current, min_effect=0.0)
    pvalues = np.array([stats.ks_2samp(reference[c], current[c]).pvalue for c in reference.columns])
    expected = [c for c, q in zip(reference.columns, stats.false_discovery_control(pvalues))
                if q <= 0.05]
    assert expected and report.drifted_features == expected
    effects = {f.feature: f.effect for f in report.features}
    for c in reference.columns:
        assert effects[c] == pytest.approx(stats.ks_2samp(reference[c], current[c]).statistic)
    gated = compute_drift(reference, current, min_effect=0.02)
    assert set(gated.drifted_features) == {c for c in expected if effects[c] >= 0.02}
    assert {f.feature for f in gated.features if f.held_back} == \
        {c for c in expected if effects[c] < 0.02}


def test_a_categorical_features_effect_is_its_total_variation_distance():
    rng = np.random.default_rng(5)
    n = 400_000
    reference = pl.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    slightly = pl.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.49, 0.31, 0.2])})
    strongly = pl.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.35, 0.35, 0.3])})
    small = compute_drift(reference, slightly)
    f = small.features[0]
    shares = lambda df: df["c"].value_counts().sort("c")["count"].to_numpy() / n  # noqa: E731
    assert f.effect == pytest.approx(0.5 * np.abs(shares(reference) - shares(slightly)).sum())
    assert f.decided_by == "chi2_homogeneity" and f.pvalue < 1e-6
    assert f.held_back and not small.detected
    large = compute_drift(reference, strongly)
    assert large.detected and large.features[0].effect == pytest.approx(0.15, abs=0.005)


def test_min_effect_is_a_share_between_0_and_1():
    assert DriftConfig(min_effect=0).min_effect == 0
    with pytest.raises(ValidationError, match="min_effect"):
        DriftConfig(min_effect=1.5)
