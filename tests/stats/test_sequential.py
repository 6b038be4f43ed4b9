"""Live A/B statistics: peeking after every batch must not inflate false winners.

The simulations run many tests at once: per-batch sums are drawn with numpy, accumulated with
``cumsum`` over looks, and the statistic is computed for every (test, look) in one call of the
vectorised ``_msprt_arrays``, the same code the scalar ``msprt`` runs (checked below).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from retrain.stats.sequential import (
    ArmSummary,
    SequentialResult,
    _msprt_arrays,
    msprt,
    running_p_value,
    srm_check,
    winner,
)

ALPHA = 0.05
N_SIMS = 1000
LOOKS = 40
BATCH = 100


def _mcse(p: float, n: int) -> float:
    """Monte Carlo standard error of a share estimated from ``n`` simulations."""
    return math.sqrt(p * (1 - p) / n)


def _bernoulli_sums(rng, rate: float, sims: int = N_SIMS, looks: int = LOOKS, batch: int = BATCH):
    """Cumulative (n, sum, sum of squares) per (test, look) of 0/1 outcomes with this rate."""
    total = np.cumsum(rng.binomial(batch, rate, size=(sims, looks)), axis=1).astype(np.float64)
    n = np.broadcast_to(batch * np.arange(1, looks + 1, dtype=np.float64), total.shape)
    return n, total, total  # x*x == x for 0/1 outcomes


def _continuous_sums(rng, draw, sims: int = N_SIMS, looks: int = LOOKS, batch: int = BATCH):
    """Cumulative (n, sum, sum of squares) per (test, look) of values from ``draw(size)``."""
    values = draw((sims, looks, batch))
    total = np.cumsum(values.sum(axis=2), axis=1)
    total_sq = np.cumsum((values**2).sum(axis=2), axis=1)
    n = np.broadcast_to(batch * np.arange(1, looks + 1, dtype=np.float64), total.shape)
    return n, total, total_sq


def _summaries(n, total, total_sq):
    """Vectorised ArmSummary.from_sums: (n, mean, sample variance) arrays."""
    mean = total / n
    variance = np.maximum((total_sq - total * mean) / (n - 1), 0.0)
    return n, mean, variance


def _sequential(arm_a, arm_b, alpha=ALPHA, tau2=0.0025):
    """mSPRT at every look of every test: (lift, ci_low, ci_high, running min p) arrays."""
    lift, low, high, p = _msprt_arrays(*_summaries(*arm_a), *_summaries(*arm_b), alpha, tau2)
    return lift, low, high, np.minimum.accumulate(p, axis=1)


def _naive_z_p(arm_a, arm_b):
    """Fixed-horizon two-sided z-test p-value at every look (what peeking usually does)."""
    n_a, mean_a, var_a = _summaries(*arm_a)
    n_b, mean_b, var_b = _summaries(*arm_b)
    z = (mean_b - mean_a) / np.sqrt(var_a / n_a + var_b / n_b)
    return 2 * stats.norm.sf(np.abs(z))


# --- A/A: no true difference ---------------------------------------------------------------

AA_CASES = {
    # conversion rate 0.3, tau = 0.05 (the default mixture)
    "bernoulli": (lambda rng: _bernoulli_sums(rng, 0.3), 0.0025),
    # a skewed continuous metric (order value, mean 1): tau = 0.1 on its own scale
    "exponential": (lambda rng: _continuous_sums(rng, lambda size: rng.exponential(1.0, size)),
                    0.01),
}


@pytest.mark.parametrize("case", AA_CASES)
def test_peeking_after_every_batch_keeps_false_positives_at_alpha(case):
    make_arm, tau2 = AA_CASES[case]
    rng = np.random.default_rng(20240501)
    arm_a, arm_b = make_arm(rng), make_arm(rng)

    *_, running_p = _sequential(arm_a, arm_b, tau2=tau2)
    ever_significant = (running_p[:, -1] <= ALPHA).mean()
    assert ever_significant <= ALPHA + 3 * _mcse(ALPHA, N_SIMS)

    # Not vacuous: the same data, tested naively after every batch, finds "winners" far more
    # often than alpha (about 4-5x with 40 looks).
    naive_ever = (_naive_z_p(arm_a, arm_b) <= ALPHA).any(axis=1).mean()
    assert naive_ever > ALPHA + 10 * _mcse(ALPHA, N_SIMS)
    assert naive_ever > 2.5 * ever_significant


# --- A/B: a real lift ----------------------------------------------------------------------

def _first_significant_winner(lift, running_p, alpha=ALPHA):
    """For each test stopped at its first significant look: +1 (B better), -1 (A), 0 (none)."""
    significant = running_p <= alpha
    first = np.argmax(significant, axis=1)
    stopped = significant.any(axis=1)
    sign = np.sign(lift[np.arange(len(lift)), first])
    return np.where(stopped, sign, 0)


def test_a_real_lift_is_found_in_favour_of_the_better_variant():
    rng = np.random.default_rng(7)
    sims = 400
    arm_a = _bernoulli_sums(rng, 0.30, sims=sims)
    arm_b = _bernoulli_sums(rng, 0.36, sims=sims)
    lift, _, _, running_p = _sequential(arm_a, arm_b)

    decided = _first_significant_winner(lift, running_p)
    assert (decided == 1).mean() >= 0.95  # B wins
    assert (decided == -1).mean() <= 0.005  # A (the worse) practically never


def test_winner_follows_the_direction_of_the_metric():
    rng = np.random.default_rng(11)
    # An error rate: B's is lower, so B is better although its lift is negative.
    a = ArmSummary.from_values(rng.random(4000) < 0.36)
    b = ArmSummary.from_values(rng.random(4000) < 0.30)
    result = msprt(a, b, higher_is_better=False)
    assert result.significant and result.lift < 0
    assert winner(result) == "B"
    assert winner(result, higher_is_better=True) == "A"
    assert winner(msprt(a, b)) == "A"  # the default direction is higher-is-better

    same = msprt(a, ArmSummary.from_values(rng.random(4000) < 0.36))
    assert not same.significant and winner(same) is None


# --- always-valid confidence interval ------------------------------------------------------

def test_interval_covers_the_true_lift_at_any_look():
    rng = np.random.default_rng(3)
    true_lift = 0.03
    arm_a = _bernoulli_sums(rng, 0.30)
    arm_b = _bernoulli_sums(rng, 0.30 + true_lift)
    _, low, high, _ = _sequential(arm_a, arm_b)
    covered = (low <= true_lift) & (true_lift <= high)

    # At a look chosen at random (not knowing the data): coverage at least 1 - alpha.
    look = rng.integers(0, LOOKS, size=N_SIMS)
    assert covered[np.arange(N_SIMS), look].mean() >= 1 - ALPHA
    # Stronger, what "always valid" means: covered at every look at once, so also at the
    # look a peeker would pick.
    assert covered.all(axis=1).mean() >= 1 - ALPHA - 3 * _mcse(ALPHA, N_SIMS)


def test_significant_exactly_when_the_interval_excludes_zero():
    rng = np.random.default_rng(5)
    n_a, n_b = rng.integers(2, 5000, size=(2, 2000))
    mean_a, mean_b = rng.normal(0.3, 0.03, size=(2, 2000))
    var_a, var_b = rng.uniform(0.01, 0.3, size=(2, 2000))
    _, low, high, p = _msprt_arrays(n_a, mean_a, var_a, n_b, mean_b, var_b, ALPHA, 0.0025)
    excludes_zero = (low > 0) | (high < 0)
    assert 0.1 < excludes_zero.mean() < 0.9  # both outcomes are exercised
    assert np.array_equal(p <= ALPHA, excludes_zero)


# --- the scalar API and the vectorised path --------------------------------------------------

def test_msprt_matches_the_formula():
    a = ArmSummary(n=1200, mean=0.30, variance=0.21)
    b = ArmSummary(n=1000, mean=0.34, variance=0.2244)
    tau2, alpha = 0.0025, 0.05
    s2 = 0.21 / 1200 + 0.2244 / 1000
    theta = 0.34 - 0.30
    likelihood_ratio = math.sqrt(s2 / (s2 + tau2)) * math.exp(
        theta**2 * tau2 / (2 * s2 * (s2 + tau2)))
    half = math.sqrt(s2 * (s2 + tau2) / tau2 * (math.log((s2 + tau2) / s2) - 2 * math.log(alpha)))

    result = msprt(a, b, alpha=alpha, mixture_variance=tau2)
    assert result.lift == pytest.approx(theta, rel=1e-12)
    assert result.relative_lift == pytest.approx(theta / 0.30, rel=1e-12)
    assert result.p_value == pytest.approx(min(1.0, 1 / likelihood_ratio), rel=1e-9)
    assert result.ci_low == pytest.approx(theta - half, rel=1e-9)
    assert result.ci_high == pytest.approx(theta + half, rel=1e-9)
    assert result.significant == (result.p_value <= alpha)
    assert (result.n_a, result.n_b) == (1200, 1000)


def test_vectorised_path_agrees_with_scalar_msprt():
    rng = np.random.default_rng(17)
    arm_a = _continuous_sums(rng, lambda size: rng.normal(10.0, 2.0, size), sims=20, looks=10)
    arm_b = _continuous_sums(rng, lambda size: rng.normal(10.1, 2.0, size), sims=20, looks=10)
    lift, low, high, p = _msprt_arrays(*_summaries(*arm_a), *_summaries(*arm_b), 0.1, 0.04)
    for sim, look in [(0, 0), (3, 4), (19, 9), (7, 2)]:
        a = ArmSummary.from_sums(*(x[sim, look] for x in arm_a))
        b = ArmSummary.from_sums(*(x[sim, look] for x in arm_b))
        result = msprt(a, b, alpha=0.1, mixture_variance=0.04)
        assert result.lift == pytest.approx(lift[sim, look], rel=1e-9)
        assert result.ci_low == pytest.approx(low[sim, look], rel=1e-9)
        assert result.ci_high == pytest.approx(high[sim, look], rel=1e-9)
        assert result.p_value == pytest.approx(p[sim, look], rel=1e-9, abs=1e-300)

    # Edge cases go through the same path and agree too.
    cases = [(ArmSummary(1, 0.5, 0.0), ArmSummary(50, 0.4, 0.2)),
             (ArmSummary(30, 0.0, 0.0), ArmSummary(30, 1.0, 0.0)),
             (ArmSummary(30, 0.0, 0.0), ArmSummary(30, 0.0, 0.0))]
    for a, b in cases:
        result = msprt(a, b)
        arrays = _msprt_arrays(a.n, a.mean, a.variance, b.n, b.mean, b.variance, ALPHA, 0.0025)
        assert [result.lift, result.ci_low, result.ci_high, result.p_value] == [
            float(x) for x in arrays]


def test_running_p_value_is_the_minimum_so_far():
    assert running_p_value(None, 0.4) == 0.4
    assert running_p_value(0.4, 0.7) == 0.4
    assert running_p_value(0.4, 0.01) == 0.01
    with pytest.raises(ValueError, match="current"):
        running_p_value(None, 1.5)
    with pytest.raises(ValueError, match="previous"):
        running_p_value(-0.1, 0.5)


def test_arm_summary_from_sums_matches_from_values():
    rng = np.random.default_rng(2)
    values = rng.gamma(2.0, 3.0, size=777)
    direct = ArmSummary.from_values(values)
    aggregated = ArmSummary.from_sums(len(values), values.sum(), (values**2).sum())
    assert aggregated.n == direct.n == 777
    assert aggregated.mean == pytest.approx(direct.mean, rel=1e-12)
    assert aggregated.variance == pytest.approx(direct.variance, rel=1e-9)

    assert ArmSummary.from_values([]) == ArmSummary(0, 0.0, 0.0)
    assert ArmSummary.from_values([2.5]) == ArmSummary(1, 2.5, 0.0)
    assert ArmSummary.from_values(np.array([True, False, True, True])).mean == 0.75
    assert ArmSummary.from_sums(0, 0, 0) == ArmSummary(0, 0.0, 0.0)
    assert ArmSummary.from_sums(1, 4.0, 16.0) == ArmSummary(1, 4.0, 0.0)


def test_from_sums_of_a_constant_metric_gives_zero_variance_not_rounding_noise():
    values = np.full(100_000, 0.1)
    total, total_sq = float(np.sum(values)), float(sum(values * values))  # naive float sums
    summary = ArmSummary.from_sums(len(values), total, total_sq)
    assert summary.variance == 0.0
    assert summary.mean == pytest.approx(0.1, rel=1e-12)
    # A sum of squares that rounding pushed just below sum**2 / n: clipped, not negative.
    assert ArmSummary.from_sums(3, 0.3, 0.03 * (1 - 1e-15)).variance == 0.0


# --- edge cases: clean results, no NaN -------------------------------------------------------

def _no_evidence(result: SequentialResult) -> bool:
    return (result.p_value == 1.0 and not result.significant and result.ci_low == -math.inf
            and result.ci_high == math.inf and winner(result) is None)


def test_too_few_requests_is_no_evidence():
    one = ArmSummary.from_values([1.0])
    many = ArmSummary.from_values(np.r_[np.zeros(500), np.ones(500)])
    empty = ArmSummary.from_values([])
    assert _no_evidence(msprt(one, many))
    assert _no_evidence(msprt(many, one))
    result = msprt(empty, many)
    assert _no_evidence(result) and result.lift == 0.0 and result.relative_lift is None
    assert (result.n_a, result.n_b) == (0, 1000)


def test_identical_outcomes_everywhere_is_no_evidence():
    # The first hundred requests of a conversion test, with no conversion yet in either arm.
    zeros = ArmSummary.from_values(np.zeros(100))
    result = msprt(zeros, zeros)
    assert _no_evidence(result)
    assert result.lift == 0.0 and result.relative_lift is None  # mean_a == 0


def test_constant_arms_that_differ_use_the_pooled_variance():
    # Two requests each, A all 0 and B all 1: far too little to call a winner.
    tiny = msprt(ArmSummary.from_values([0, 0]), ArmSummary.from_values([1, 1]))
    assert tiny.lift == 1.0 and not tiny.significant
    assert math.isfinite(tiny.ci_low) and tiny.ci_low < 0 < tiny.ci_high
    # A thousand each: overwhelming, and computed without overflow or NaN.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = msprt(ArmSummary.from_values(np.zeros(1000)), ArmSummary.from_values(np.ones(1000)))
    assert big.significant and big.p_value == 0.0 and winner(big) == "B"
    assert 0 < big.ci_low < 1 < big.ci_high


def test_overwhelming_evidence_does_not_overflow():
    a = ArmSummary(n=10**9, mean=0.30, variance=0.21)
    b = ArmSummary(n=10**9, mean=0.40, variance=0.24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = msprt(a, b, mixture_variance=1e-6)
    assert result.p_value == 0.0 and result.significant
    assert result.ci_low < 0.1 < result.ci_high and result.ci_high - result.ci_low < 1e-3


def test_validation_errors_name_the_argument():
    a = ArmSummary(100, 0.3, 0.21)
    for alpha in (0.0, 1.0, -0.05, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            msprt(a, a, alpha=alpha)
    for tau2 in (0.0, -0.01, math.inf, math.nan):
        with pytest.raises(ValueError, match="mixture_variance"):
            msprt(a, a, mixture_variance=tau2)
    with pytest.raises(TypeError, match="ArmSummary"):
        msprt((100, 0.3, 0.21), a)
    with pytest.raises(ValueError, match="n must be >= 0"):
        ArmSummary(-1, 0.3, 0.21)
    with pytest.raises(ValueError, match="n must be >= 0"):
        ArmSummary.from_sums(-5, 1.0, 1.0)
    with pytest.raises(ValueError, match="n must be a whole number"):
        ArmSummary(2.5, 0.3, 0.21)
    with pytest.raises(ValueError, match="variance"):
        ArmSummary(10, 0.3, -0.1)
    with pytest.raises(ValueError, match="mean"):
        ArmSummary(10, math.nan, 0.1)
    with pytest.raises(ValueError, match="total_sq"):
        ArmSummary.from_sums(10, 1.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        ArmSummary.from_values([0.1, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        ArmSummary.from_values([[0.1, 0.2]])


# --- sample-ratio mismatch -------------------------------------------------------------------

def test_srm_flags_a_52_48_split_configured_as_50_50():
    exact = srm_check([10_400, 9_600], [0.5, 0.5])
    assert exact.mismatch and exact.chi2 == pytest.approx(32.0)
    assert exact.p_value == pytest.approx(stats.chi2.sf(32.0, 1), rel=1e-9)
    assert exact.observed == (10_400, 9_600) and exact.expected == (10_000.0, 10_000.0)

    rng = np.random.default_rng(52)
    to_a = int(rng.binomial(20_000, 0.52))
    assert srm_check([to_a, 20_000 - to_a], [0.5, 0.5]).mismatch


def test_srm_leaves_a_genuine_50_50_split_alone():
    flagged = 0
    for seed in range(500):
        to_a = int(np.random.default_rng(seed).binomial(20_000, 0.5))
        flagged += srm_check([to_a, 20_000 - to_a], [0.5, 0.5]).mismatch
    assert flagged / 500 <= 0.01


def test_srm_with_three_variants_and_edge_cases():
    assert not srm_check([8_020, 1_010, 970], [0.8, 0.1, 0.1]).mismatch
    assert srm_check([8_300, 900, 800], [0.8, 0.1, 0.1]).mismatch
    nothing = srm_check([0, 0], [0.5, 0.5])
    assert (nothing.chi2, nothing.p_value, nothing.mismatch) == (0.0, 1.0, False)
    # A variant configured to get nothing: fine while it gets nothing, broken if it gets any.
    assert not srm_check([5_030, 0, 4_970], [0.5, 0.0, 0.5]).mismatch
    leaked = srm_check([5_030, 3, 4_970], [0.5, 0.0, 0.5])
    assert leaked.mismatch and leaked.p_value == 0.0
    assert srm_check(np.array([120, 80]), (0.6, 0.4)).observed == (120, 80)


def test_srm_validation_errors_name_the_argument():
    with pytest.raises(ValueError, match="expected_shares must sum to 1"):
        srm_check([10, 10], [0.5, 0.6])
    with pytest.raises(ValueError, match="observed has 3 variants but expected_shares has 2"):
        srm_check([10, 10, 10], [0.5, 0.5])
    with pytest.raises(ValueError, match="at least 2 variants"):
        srm_check([10], [1.0])
    with pytest.raises(ValueError, match=r"observed\[1\]"):
        srm_check([10, -1], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"observed\[0\]"):
        srm_check([10.5, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="expected_shares must be finite and >= 0"):
        srm_check([10, 10], [1.5, -0.5])
    with pytest.raises(ValueError, match="alpha"):
        srm_check([10, 10], [0.5, 0.5], alpha=0)
