"""Dataset-level decisions: Benjamini-Hochberg and Bonferroni keep false alarms on stationary
data at the configured level, however many features; Evidently's share rule does not react
to one drifted feature."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from retrain.drift import benjamini_hochberg_cutoff, compute_drift, pvalue_cutoff

ALPHA = 0.05


def test_benjamini_hochberg_rejects_what_scipys_adjusted_p_values_reject():
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(1, 30))
        p = np.concatenate([rng.uniform(size=m), rng.uniform(0, 0.01, size=int(rng.integers(0, 4)))])
        cutoff = benjamini_hochberg_cutoff(p, ALPHA)
        np.testing.assert_array_equal(p <= cutoff, stats.false_discovery_control(p) <= ALPHA)
    assert pvalue_cutoff([0.2, 0.01, 0.3, 0.04], "bonferroni", ALPHA) == ALPHA / 4


def stationary_window(rng: np.random.Generator, rows: int) -> pl.DataFrame:
    """18 numeric features (half of them sharing a common factor: positively dependent) and
    2 categorical ones, all from the same distribution in every window."""
    common = rng.normal(size=rows)
    columns = {f"dep{i}": math.sqrt(0.5) * common + math.sqrt(0.5) * rng.normal(size=rows)
               for i in range(9)}
    columns.update({f"ind{i}": rng.normal(size=rows) for i in range(9)})
    columns.update({f"cat{i}": rng.choice(["a", "b", "c", "d"], rows) for i in range(2)})
    return pl.DataFrame(columns)


def test_false_alarm_rate_on_stationary_data_stays_at_alpha():
    """Many simulated checks of 20 features with nothing drifting: the corrected rules fire in
    at most ALPHA of the checks (plus three Monte Carlo standard errors); testing each feature
    at ALPHA without correction would fire in most of them."""
    rng = np.random.default_rng(42)
    checks, rows = 400, 150
    fired = {"bh": 0, "bonferroni": 0, "uncorrected": 0}
    for _ in range(checks):
        report = compute_drift(stationary_window(rng, rows), stationary_window(rng, rows),
                               methods=("ks",), decision="bh", alpha=ALPHA, n_jobs=1)
        pvalues = [f.pvalue for f in report.features]
        assert len(pvalues) == 20 and all(p is not None for p in pvalues)
        fired["bh"] += report.drifted
        fired["bonferroni"] += min(pvalues) <= pvalue_cutoff(pvalues, "bonferroni", ALPHA)
        fired["uncorrected"] += min(pvalues) <= ALPHA
    rate = {k: v / checks for k, v in fired.items()}
    allowed = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / checks)
    assert rate["bh"] <= allowed, rate
    assert rate["bonferroni"] <= allowed, rate
    assert rate["uncorrected"] > 0.4, rate


def test_one_drifted_feature_fires_bh_but_not_the_share_rule():
    rng = np.random.default_rng(7)
    reference, current = stationary_window(rng, 2000), stationary_window(rng, 2000)
    current = current.with_columns(pl.col("ind0") + 0.5)
    bh = compute_drift(reference, current, decision="bh")
    share = compute_drift(reference, current, decision="share", drift_share=0.5)
    assert bh.drifted and bh.drifted_features == ["ind0"]
    assert not share.drifted and "ind0" in share.drifted_features
