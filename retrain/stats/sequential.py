"""Statistics for live A/B tests that are looked at while they run.

A live test is checked every hour, and a fixed-horizon test (a z-test at alpha = 0.05) that is
checked after every batch and stopped at the first "significant" look declares a false winner
far more often than 5% of the time: each look is another chance for noise to cross the line.
The mixture sequential probability ratio test (mSPRT; Johari, Pekelis & Walsh, "Always valid
inference", 2017, with Robbins' normal mixture) gives *always-valid* p-values and confidence
intervals instead: the chance that the p-value ever drops below alpha under "no difference",
at any look and however often one looks, is at most alpha. So a test may be stopped the first
time it is significant.

The test is on ``theta = mean_b - mean_a`` for a per-request metric (conversion as 0/1,
revenue, latency). Each variant is summarised by count, mean and sample variance
(:class:`ArmSummary`, also from SQL aggregates), so no raw rows need to be kept. The variance is
estimated from the data (a plug-in, as in the paper's practical version), which makes the
guarantee approximate for the first few hundred requests; the tests simulate it.

Also here: :func:`srm_check`, the sample-ratio-mismatch check. When the traffic split differs
from the configured shares, assignment is broken (a bug in routing, bots, a variant that
crashes before it logs) and the lift cannot be trusted, whatever its p-value.

Pure functions on numpy/scipy: no I/O, no Prefect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

_EPS = float(np.finfo(np.float64).eps)


def _count(value, name: str) -> int:
    """``value`` as a non-negative int, or ValueError naming ``name``."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number of requests, got {value!r}")
    count = int(value)
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {alpha}")
    return alpha


@dataclass(frozen=True)
class ArmSummary:
    """One variant's per-request metric values, reduced to what the test needs.

    ``variance`` is the sample variance (ddof=1); it is 0 when ``n < 2`` and ``mean`` is 0
    when ``n == 0`` (such an arm carries no evidence; :func:`msprt` treats it so).
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _count(self.n, "n"))
        if not math.isfinite(self.mean):
            raise ValueError(f"mean must be finite, got {self.mean}")
        if not (math.isfinite(self.variance) and self.variance >= 0.0):
            raise ValueError(f"variance must be finite and >= 0, got {self.variance}")

    @classmethod
    def from_values(cls, values) -> ArmSummary:
        """Summary of a 1-D array-like of metric values (booleans count as 0/1)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values must be finite (no NaN or inf); drop missing outcomes first")
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        variance = float(values.var(ddof=1)) if n >= 2 else 0.0
        return cls(n, float(values.mean()), variance)

    @classmethod
    def from_sums(cls, n, total, total_sq) -> ArmSummary:
        """Summary from SQL aggregates: ``count(x)``, ``sum(x)``, ``sum(x * x)``.

        ``sum(x*x) - sum(x)**2 / n`` cancels badly when the spread is small next to the mean, and
        can come out slightly negative or as a few ulps of noise for a constant metric. Values
        within the rounding error of a naive float sum (``n * eps * mean(x*x)``) become 0, so a
        constant metric gives exactly 0 here, as :meth:`from_values` would.
        """
        n = _count(n, "n")
        total, total_sq = float(total), float(total_sq)
        if not (math.isfinite(total) and math.isfinite(total_sq)):
            raise ValueError(f"total and total_sq must be finite, got {total} and {total_sq}")
        if total_sq < 0:
            raise ValueError(f"total_sq (a sum of squares) must be >= 0, got {total_sq}")
        if n == 0:
            if total != 0 or total_sq != 0:
                raise ValueError(f"n is 0 but total={total} and total_sq={total_sq} are not")
            return cls(0, 0.0, 0.0)
        mean = total / n
        if n < 2:
            return cls(n, mean, 0.0)
        variance = (total_sq - total * mean) / (n - 1)
        if variance <= n * _EPS * (total_sq / n):
            variance = 0.0
        return cls(n, mean, variance)


@dataclass(frozen=True)
class SequentialResult:
    """The mSPRT at one look. ``lift = mean_b - mean_a`` in the metric's own units.

    ``ci_low``/``ci_high`` is the always-valid (1 - alpha) interval for the lift at this look; it
    is ``(-inf, inf)`` while the data say nothing about the noise (fewer than 2 requests in an
    arm, or every outcome so far identical). ``p_value`` is the always-valid p-value at this
    look; across looks keep the running minimum (:func:`running_p_value`). ``significant`` is
    ``p_value <= alpha``, which is the same as the interval excluding 0.
    ``higher_is_better`` records the metric's direction for :func:`winner`.
    """

    lift: float
    relative_lift: float | None
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    n_a: int
    n_b: int
    higher_is_better: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def _msprt_arrays(n_a, mean_a, var_a, n_b, mean_b, var_b, alpha: float, tau2: float):
    """The mSPRT on arrays of summaries (any broadcastable shapes); the one implementation.

    Returns ``(lift, ci_low, ci_high, p_value)`` as float arrays. Inputs are not validated here:
    :func:`msprt` does that for the public, scalar path; simulations call this directly with
    cumulative sums over many tests and looks at once.
    """
    n_a, mean_a, var_a, n_b, mean_b, var_b = (
        np.asarray(x, dtype=np.float64) for x in (n_a, mean_a, var_a, n_b, mean_b, var_b))
    enough = (n_a >= 2) & (n_b >= 2)
    lift = np.where((n_a > 0) & (n_b > 0), mean_b - mean_a, 0.0)
    na = np.where(enough, n_a, 2.0)  # placeholders keep the arithmetic finite; masked below
    nb = np.where(enough, n_b, 2.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s2 = var_a / na + var_b / nb
        # Both arms constant so far (e.g. A all 0, B all 1): the per-arm variances claim there is
        # no noise, which would make any difference infinitely convincing after two requests.
        # Use the variance of both arms pooled, i.e. the noise there would be if the two were
        # the same (as the pooled two-proportion z-test does). If that is 0 too, every outcome
        # is identical and there is no information yet: p = 1 and an unbounded interval.
        total = na + nb
        pooled = ((na - 1) * var_a + (nb - 1) * var_b + na * nb / total * lift**2) / (total - 1)
        s2 = np.where(s2 > 0, s2, pooled * (1 / na + 1 / nb))
        informative = enough & (s2 > 0) & np.isfinite(s2)
        s2 = np.where(informative, s2, 1.0)
        log_ratio = np.log(s2 + tau2) - np.log(s2)  # log((s2 + tau2) / s2), safe for tiny s2
        log_lambda = -0.5 * log_ratio + lift**2 * tau2 / (2 * s2 * (s2 + tau2))
        p_value = np.where(informative, np.exp(np.minimum(-log_lambda, 0.0)), 1.0)
        half = np.sqrt(s2 * (s2 + tau2) / tau2 * (log_ratio - 2 * math.log(alpha)))
    half = np.where(informative, half, np.inf)
    return lift, lift - half, lift + half, p_value


def msprt(a: ArmSummary, b: ArmSummary, *, alpha: float = 0.05, mixture_variance: float = 0.0025,
          higher_is_better: bool = True) -> SequentialResult:
    """Always-valid test of ``mean_b - mean_a`` at this look; safe to call after every batch.

    ``theta_hat = mean_b - mean_a``, ``s2 = var_a/n_a + var_b/n_b`` and, with the normal mixing
    prior ``theta ~ N(0, tau2)`` (``tau2 = mixture_variance``), the likelihood ratio against
    ``theta = 0`` is ``Lambda = sqrt(s2/(s2+tau2)) * exp(theta_hat**2 * tau2 / (2*s2*(s2+tau2)))``
    (computed in log space). ``p = min(1, 1/Lambda)``; the interval is ``theta_hat +-
    sqrt(s2*(s2+tau2)/tau2 * (log((s2+tau2)/s2) - 2*log(alpha)))``.

    ``mixture_variance`` is in squared metric units: its square root is the size of lift the
    test is tuned to find fastest. The default (0.05**2) suits conversion rates; for revenue or
    latency pass roughly ``(plausible lift)**2``. Any positive value keeps the guarantee; a bad
    one only costs power.

    Edge cases give a clean "no evidence" result (``p = 1``, not significant, interval
    ``(-inf, inf)``) rather than NaN: an arm with fewer than 2 requests, or all outcomes
    identical. An empty arm also gives ``lift = 0``. When each arm is constant but the two
    differ, the pooled variance of both arms is used (see :func:`_msprt_arrays`).

    ``higher_is_better`` does not change the statistic (the lift is always B minus A); it is
    kept on the result so that :func:`winner` names the better variant.
    """
    if not isinstance(a, ArmSummary) or not isinstance(b, ArmSummary):
        raise TypeError("a and b must be ArmSummary (see ArmSummary.from_values / from_sums)")
    alpha = _check_alpha(alpha)
    tau2 = float(mixture_variance)
    if not (math.isfinite(tau2) and tau2 > 0):
        raise ValueError(f"mixture_variance must be a positive finite number, got {tau2}")
    lift, low, high, p = _msprt_arrays(a.n, a.mean, a.variance, b.n, b.mean, b.variance,
                                       alpha, tau2)
    lift, p = float(lift), float(p)
    relative = lift / abs(a.mean) if a.n > 0 and a.mean != 0 else None
    return SequentialResult(lift=lift, relative_lift=relative, ci_low=float(low),
                            ci_high=float(high), p_value=p, significant=bool(p <= alpha),
                            n_a=a.n, n_b=b.n, higher_is_better=bool(higher_is_better))


def running_p_value(previous: float | None, current: float) -> float:
    """The always-valid p-value after this look: the minimum over all looks so far.

    Always-valid p-values may be carried as running minima (the guarantee is over the whole
    path), so a test that was once significant stays significant. ``previous`` is None at
    the first look.
    """
    current = float(current)
    if not 0.0 <= current <= 1.0:
        raise ValueError(f"current must be a p-value in [0, 1], got {current}")
    if previous is None:
        return current
    previous = float(previous)
    if not 0.0 <= previous <= 1.0:
        raise ValueError(f"previous must be a p-value in [0, 1] or None, got {previous}")
    return min(previous, current)


def winner(result: SequentialResult, higher_is_better: bool | None = None
           ) -> Literal["A", "B"] | None:
    """``"A"`` or ``"B"`` when the test is significant, else None.

    ``higher_is_better`` defaults to the direction given to :func:`msprt` (True: a positive
    lift means B wins; False, e.g. latency or error rate: a negative lift means B wins).
    """
    if higher_is_better is None:
        higher_is_better = result.higher_is_better
    if not result.significant or result.lift == 0:
        return None
    b_is_better = (result.lift > 0) == bool(higher_is_better)
    return "B" if b_is_better else "A"


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness of fit of the traffic split; ``mismatch`` when ``p_value < alpha``."""

    chi2: float
    p_value: float
    mismatch: bool
    observed: tuple[int, ...]
    expected: tuple[float, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def srm_check(observed: Sequence[int], expected_shares: Sequence[float],
              alpha: float = 0.001) -> SrmResult:
    """Sample-ratio mismatch: are the requests per variant consistent with the configured split?

    ``observed`` is the request count per variant, ``expected_shares`` the configured shares in
    the same order (summing to 1). The alpha is small (0.001 by default) because the check runs
    at every look and on large counts, and a false alarm halts a healthy test.

    A variant with share 0 is left out of the test when it got no requests; if it got any,
    the split is certainly broken (``chi2 = inf``, ``p = 0``). With no requests at all there is
    nothing to check: ``p = 1``, no mismatch.
    """
    alpha = _check_alpha(alpha)
    counts = tuple(_count(c, f"observed[{i}]") for i, c in enumerate(observed))
    shares = np.asarray(expected_shares, dtype=np.float64)
    if shares.ndim != 1:
        raise ValueError("expected_shares must be a flat sequence of shares")
    if len(counts) != len(shares):
        raise ValueError(f"observed has {len(counts)} variants but expected_shares has "
                         f"{len(shares)}")
    if len(counts) < 2:
        raise ValueError(f"observed must have at least 2 variants, got {len(counts)}")
    if not np.isfinite(shares).all() or (shares < 0).any():
        raise ValueError(f"expected_shares must be finite and >= 0, got {shares.tolist()}")
    if abs(shares.sum() - 1.0) > 1e-9:
        raise ValueError(f"expected_shares must sum to 1, got {shares.sum()!r}")
    total = sum(counts)
    expected = tuple(float(total * s) for s in shares)
    obs = np.asarray(counts, dtype=np.float64)
    if total == 0:
        return SrmResult(0.0, 1.0, False, counts, expected)
    if (obs[shares == 0] > 0).any():
        return SrmResult(math.inf, 0.0, True, counts, expected)
    live = shares > 0
    if live.sum() < 2:  # one variant takes all traffic and gets it all: nothing to compare
        return SrmResult(0.0, 1.0, False, counts, expected)
    live_shares = shares[live] / shares[live].sum()  # renormalise the 1e-9 slack for scipy
    chi2, p_value = stats.chisquare(obs[live], total * live_shares)
    p_value = float(p_value)
    return SrmResult(float(chi2), p_value, bool(p_value < alpha), counts, expected)
