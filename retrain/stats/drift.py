"""Per-column drift statistics that reproduce Evidently 0.7's numbers, computed on sorted arrays.

Evidently's Report (``ValueDrift`` / ``DataDriftPreset``) prepares each column the same way for
every method: ``+-inf`` become NaN and NaN is dropped on each side (``get_one_column_drift``).
Then

* ``ks``: ``scipy.stats.ks_2samp(reference, current)`` with its defaults (two-sided,
  ``method="auto"``: exact p-value when both samples have at most 10 000 values, Smirnov's
  asymptotic distribution ``kstwo`` otherwise). Drift when ``p <= threshold``.
* ``psi`` (``legacy/calculations/stattests/utils.py:get_binned_data``): when the *reference*
  has more than 20 distinct values and the column is numeric, equal-width bins from
  ``np.histogram_bin_edges(reference + current, "sturges")``; otherwise one bin per distinct
  value seen on either side. Shares are counts / non-missing rows; an empty bin's share is
  replaced by ``min(non-zero share) / 1e6`` when that minimum is at most 1e-4, else by 1e-4
  (separately for each side). Drift when ``psi >= threshold``.

Here a numeric column is sorted once (:class:`NumericSample`); the KS statistic is read off the
two empirical CDFs at the distinct values with ``searchsorted`` and the PSI bins are counted by
``searchsorted`` of the bin edges, which gives exactly the counts ``np.histogram`` gives.
A sorted reference can be stored (the reference profile) and reused for every check.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats
from scipy.stats import _stats_py as _scipy_stats_py

EXACT_KS_MAX_N = 10_000  # scipy.stats.ks_2samp(method="auto") is exact up to this size
PSI_CATEGORICAL_MAX_DISTINCT = 20  # Evidently bins numeric columns with more distinct values

# Samples ----------------------------------------------------------------------------------

_RANKS: dict[int, np.ndarray] = {}
_RANKS_LOCK = threading.Lock()


def _ranks(n: int) -> np.ndarray:
    """1..n, read-only, shared: every column of a window has the same length, so the counts
    of its tie-free columns are one array rather than one fresh allocation each."""
    with _RANKS_LOCK:
        found = _RANKS.get(n)
        if found is None:
            if len(_RANKS) >= 4:
                _RANKS.pop(next(iter(_RANKS)))
            found = np.arange(1, n + 1, dtype=np.int64)
            found.flags.writeable = False
            _RANKS[n] = found
        return found


class NumericSample:
    """The finite values of one numeric column, sorted, and what Evidently would see of them.

    ``integer`` is true when pandas would hold the column as an integer dtype (an integer
    column without missing values): numpy then widens Sturges bins narrower than 1 to 1.
    """

    __slots__ = ("values", "integer", "missing", "_distinct")

    def __init__(self, values: np.ndarray, integer: bool = False, missing: int = 0):
        self.values = values  # float64, sorted ascending, finite
        self.integer = bool(integer)
        self.missing = int(missing)  # null, NaN or infinite values that were dropped
        self._distinct: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values and, for each, the number of values at or below it."""
        if self._distinct is None:
            v = self.values
            change = v[1:] != v[:-1]
            if change.all():  # no ties (the usual case for a continuous column): no copy
                self._distinct = (v, _ranks(v.shape[0]))
            else:  # the last index of each run of equal values
                last = np.flatnonzero(np.append(change, True))
                self._distinct = (v[last], last + 1)
        return self._distinct

    @property
    def nunique(self) -> int:
        return int(self.distinct()[0].shape[0])

    def more_distinct_than(self, k: int) -> bool:
        """Whether there are more than ``k`` distinct values: seen among a few evenly spaced
        ones (a continuous column), or found by jumping from one distinct value to the next
        (at most ``k`` binary searches, not a pass)."""
        if self._distinct is not None:
            return self.nunique > k
        v, position = self.values, 0
        spaced = v[::max(1, v.shape[0] // (4 * k + 4))]
        if np.count_nonzero(spaced[1:] != spaced[:-1]) >= k:  # more than k among them
            return True
        for _ in range(k):
            if position >= v.shape[0]:
                return False
            position = int(np.searchsorted(v, v[position], side="right"))
        return position < v.shape[0]

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values and how often each occurs."""
        values, cumulative = self.distinct()
        return values, np.diff(cumulative, prepend=0)


@dataclass(frozen=True)
class CategoricalSample:
    """Counts of the non-missing values of one categorical column (keys as Python values)."""

    keys: tuple
    counts: np.ndarray  # int64, aligned with keys
    missing: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def nunique(self) -> int:
        return len(self.keys)

    def as_dict(self) -> dict[Any, int]:
        return dict(zip(self.keys, self.counts.tolist()))


Sample = NumericSample | CategoricalSample


def _is_integer_dtype(dtype: pl.DataType) -> bool:
    return dtype.is_integer()


def numeric_sample(values: Any, out: np.ndarray | None = None) -> NumericSample:
    """A :class:`NumericSample` of a polars Series, pandas Series or numpy array.

    ``out``: a float64 buffer at least as long as ``values`` to sort them into, instead of a
    fresh array (a caller sorting column after column reuses one buffer, so no column pays for
    a new allocation and its page faults). The sample then views the buffer and is valid only
    until the buffer is written again.
    """
    integer = False
    if isinstance(values, pl.Series):
        integer = _is_integer_dtype(values.dtype) and values.null_count() == 0
        arr = values.cast(pl.Float64).to_numpy()
    else:
        try:
            import pandas as pd  # late: only for a caller who passes pandas Series
            if isinstance(values, pd.Series):
                integer = pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any()
                arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                raise TypeError
        except (ImportError, TypeError):
            raw = np.asarray(values)
            integer = np.issubdtype(raw.dtype, np.integer)
            arr = raw.astype(np.float64, copy=False)
    total = arr.shape[0]
    if out is None:
        s = np.sort(arr)  # NaN sorts last; -inf first, +inf before NaN
    else:
        s = out[:total]
        np.copyto(s, arr)
        s.sort()
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))
    s = s[lo:hi]
    return NumericSample(s, integer=integer, missing=total - s.shape[0])


def _categorical_values(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The values a categorical sample counts: numbers as Float64 with NaN missing,
    categories as their text."""
    if dtype.is_numeric():
        return column.cast(pl.Float64).fill_nan(None)
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return column.cast(pl.String)
    return column


def _from_counts(counts: pl.DataFrame, total: int) -> CategoricalSample:
    """A sample from a frame of (value, count) rows without nulls."""
    counts = counts.sort(counts.columns[0])  # a fixed order, so sums are reproducible bit for bit
    keys = tuple(counts.get_column(counts.columns[0]).to_list())
    values = counts.get_column(counts.columns[1]).cast(pl.Int64).to_numpy()
    return CategoricalSample(keys, values, missing=total - int(values.sum()))


def categorical_sample(values: Any) -> CategoricalSample:
    """A :class:`CategoricalSample` of a polars or pandas Series (nulls/NaN dropped)."""
    if not isinstance(values, pl.Series):
        values = pl.Series(values=values.tolist() if hasattr(values, "tolist") else list(values),
                           strict=False)
    values = values.to_frame().select(_categorical_values(pl.col(values.name), values.dtype)
                                      ).to_series()
    return _from_counts(values.drop_nulls().value_counts(sort=False), values.len())


def categorical_counts(lf: pl.LazyFrame, column: str) -> CategoricalSample:
    """``categorical_sample`` of one column of a lazy frame, counted in a stream (memory
    grows with the number of distinct values, not of rows)."""
    dtype = lf.collect_schema()[column]
    counts = (lf.select(_categorical_values(pl.col(column), dtype).alias(column))
              .group_by(column).agg(pl.len().alias("count")).collect(engine="streaming"))
    total = int(counts.get_column("count").sum())
    return _from_counts(counts.filter(pl.col(column).is_not_null()), total)


# KS ---------------------------------------------------------------------------------------

KS_BLOCK = 64  # points per block of the coarse pass of the KS statistic
KS_FANOUT = 8  # each block a pass leaves is cut into this many for the next


class _Grid:
    """One sorted side of the KS statistic at the positions its coarse pass looks at (every
    ``KS_BLOCK``-th value and the last), with what the other side's pass reads off them."""

    __slots__ = ("values", "idx", "grid", "cdf", "below", "above")

    def __init__(self, values: np.ndarray):
        n = values.shape[0]
        idx = np.arange(0, n, KS_BLOCK)
        if idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        self.values, self.idx, self.grid = values, idx, values[idx]
        self.cdf = (idx + 1) / n  # (i + 1)/n at each grid position i
        # Bounds on this side's count at a value x in [grid[j - 1], grid[j]) over n: at least
        # (idx[j - 1] + 1)/n (0 for j = 0), at most idx[j]/n (1 past the last).
        self.below = np.concatenate(([0], idx + 1)) / n
        self.above = np.concatenate((idx, [n])) / n


def ks_statistic(reference: NumericSample, current: NumericSample) -> float:
    """The two-sided KS statistic exactly as ``scipy.stats.ks_2samp`` computes it.

    scipy takes ``F1(v)/n1 - F2(v)/n2`` at every observed value ``v`` and keeps the largest
    value and the most negative one. Between two reference values ``F1`` is constant and
    ``F2`` can only grow, so the largest value is reached at a reference value; likewise the
    most negative one at a current value. Evaluating the same float expressions there, with
    the same integer counts, gives scipy's number bit for bit, and ``_largest_gap`` finds
    each extreme without evaluating most values. (In its exact mode, n <= 10 000, scipy then
    rounds the statistic to a multiple of 1/lcm(n1, n2); that mode is left to scipy, see
    ``ks_pvalue``.)
    """
    ref, cur = _Grid(reference.values), _Grid(current.values)
    # The grids merged: for each grid value of one side, how many of the other's are at or
    # below it. One binary search gives the reference's; the current's follow by counting,
    # since a reference grid value r is at or below the l-th current grid value exactly when
    # at most l current grid values are strictly below r.
    ref_in_cur = np.searchsorted(cur.grid, ref.grid, side="right")
    below = ref_in_cur
    if (cur.grid[ref_in_cur - 1] == ref.grid).any():  # a value on both grids (ties)
        below = np.searchsorted(cur.grid, ref.grid, side="left")
    cur_in_ref = np.cumsum(np.bincount(below, minlength=cur.grid.shape[0] + 1))[:-1]
    max_s = _largest_gap(ref, cur, ref_in_cur)
    # -(F1/n1 - F2/n2) is F2/n2 - F1/n1 exactly (IEEE negation and subtraction).
    min_s = float(np.clip(_largest_gap(cur, ref, cur_in_ref), 0, 1))
    return min_s if min_s > max_s else max_s


def _largest_gap(own: _Grid, other: _Grid, j: np.ndarray) -> float:
    """max over the values x of ``own`` of ``F(x)/n - G(x)/n_other``, where ``F`` and ``G``
    count the values of ``own`` and of ``other`` (both sorted) at or below x.

    At position i of ``own``, ``F`` is at least i + 1, and exactly that at the last of equal
    values, so the maximum of ``(i + 1)/n - G(own[i])/n_other`` over the positions is the
    maximum sought (the same floats: division and subtraction are monotone): no count of
    ``own`` is needed. ``G`` is found coarse to fine. From the two grids merged (``j``: for
    each grid value of ``own``, how many grid values of ``other`` are at or below it), ``G``
    at each grid value of ``own`` is known to within ``KS_BLOCK``. That bounds the gap
    at every grid position from below, and in every block between two of them from above,
    since both counts are monotone; only the blocks whose upper bound reaches the best lower
    bound are searched further (``_refine``). The counts evaluated are exact, so the result
    is the float the full evaluation gives."""
    values, n, m = own.values, own.values.shape[0], other.values.shape[0]
    best_low = (own.cdf - other.above[j]).max()
    # Block b: positions idx[b] + 1 .. idx[b + 1]; G over n_other is at least below[j[b]].
    low = other.below[j[:-1]]
    blocks = np.flatnonzero(own.cdf[1:] - low >= best_low)
    first = int(np.searchsorted(other.values, values[0], side="right"))
    best = 1 / n - first / m  # position 0, in no block
    if not blocks.size:
        return float(best)
    return _refine(values, other.values, own.idx[blocks], own.idx[blocks + 1], low[blocks],
                   best, KS_BLOCK)


def _refine(own: np.ndarray, other: np.ndarray, starts: np.ndarray, stops: np.ndarray,
            taken: np.ndarray, best: float, length: int) -> float:
    """``best`` raised to the largest gap at positions ``starts[k] + 1 .. stops[k]`` of
    ``own``, for blocks at most ``length`` positions long, given ``taken``: a lower bound
    on ``G/n_other`` at each start (at most ``G(own[start])/n_other``).

    Each block is cut every ``length // KS_FANOUT`` positions, its stop being the last cut;
    ``G`` is counted at the cuts and their gaps raise ``best``. Inside the piece between two
    cuts, i + 1 <= the piece's stop and ``G`` is at least its count at the piece's start, so
    no gap beats ``stop/n - G(start)/n_other``: the pieces whose bound exceeds ``best`` are
    cut in turn, until the cuts are every position."""
    n, m = own.shape[0], other.shape[0]
    while True:
        step = max(1, length // KS_FANOUT)
        parts = -(-length // step)
        cuts = np.minimum(starts[:, None] + step * np.arange(1, parts + 1), stops[:, None])
        counted = np.searchsorted(other, own[cuts], side="right") / m
        gaps = (cuts + 1) / n
        gaps -= counted
        best = max(best, float(gaps.max()))
        if step == 1:
            return best
        piece_starts = np.concatenate((starts[:, None], cuts[:, :-1]), axis=1)
        piece_taken = np.concatenate((taken[:, None], counted[:, :-1]), axis=1)
        bound = cuts / n
        bound -= piece_taken
        keep = (bound > best) & (cuts - piece_starts > 1)
        if not keep.any():
            return best
        starts, stops, taken, length = piece_starts[keep], cuts[keep], piece_taken[keep], step


def ks_pvalue(reference: NumericSample, current: NumericSample,
              statistic: float | None = None) -> float:
    """The p-value of ``scipy.stats.ks_2samp(reference, current)`` (Evidently's ``ks``):
    scipy's method selection (``method="auto"``) and its own exact and asymptotic routines.
    ``statistic``: ``ks_statistic(reference, current)`` when the caller has it already."""
    n1, n2 = reference.n, current.n
    d = ks_statistic(reference, current) if statistic is None else statistic
    if max(n1, n2) <= EXACT_KS_MAX_N:
        exact = getattr(_scipy_stats_py, "_attempt_exact_2kssamp", None)
        if exact is None:  # a scipy without it: call ks_2samp itself
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(stats.ks_2samp(reference.values, current.values).pvalue)
        success, d, prob = exact(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if success:
            return float(np.clip(prob, 0, 1))
        # like scipy: the asymptotic p-value of the (rounded) statistic
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo_sf(d, np.round(en)), 0, 1))


# scipy.stats.kstwo.sf(d, n) for large n and 2.2 <= n d^2 < 370 is 2 * scipy.special.smirnov(n, d),
# an exact sum of n (1 - d) terms done one by one in double-double arithmetic: about a second
# at n = 500 000, i.e. for every moderately drifted feature of a large window. The same sum,
# vectorised with the binomial pmf, agrees to ~1e-13 (relative) and takes a tenth of it; its
# terms are log-concave in v (for n d^2 > 2), so those too small to matter are found from a
# coarse grid of them and left out, which leaves a third to two thirds of the terms.
FAST_SMIRNOV_MIN_N = 20_000  # below this scipy is quick: call it
SMIRNOV_MAX_COMPUTE_N = 1_000_000  # above this scipy itself uses a closed-form approximation
SMIRNOV_GRID = 1024  # terms of the coarse pass that finds the ones that matter
SMIRNOV_CHUNK = 8192  # terms summed at a time: small temporaries, reused and in cache
SMIRNOV_TOLERANCE = 1e-17  # the terms left out add up to less than this share of the sum
_MINLOG = -708.3964185322641  # log of the smallest normal double, as in scipy's cephes
_TINY = 1e-290  # below this the vectorised terms lose relative accuracy: call scipy

try:  # the binomial pmf itself, without scipy.stats' argument checks and copies
    from scipy.special._ufuncs import _binom_pmf
except ImportError:  # pragma: no cover - a scipy without it
    _binom_pmf = stats.binom.pmf


def _smirnov_terms(v: np.ndarray, n: int, d: float) -> np.ndarray:
    """The terms ``C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v)`` at ``v`` (float64)."""
    p = v / n
    p += d
    terms = _binom_pmf(v, n, p)
    terms /= p
    return terms


def smirnov_sum(n: int, d: float) -> float:
    """P(D+_n >= d) by the Birnbaum-Tingey formula
    ``d * sum_v C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v)``, ``v = 0 .. n - floor(n d) - 1``.

    For ``n d^2 > 2`` the log of a term is a concave function of v, so the terms of at least
    any given size form one run of v. They are evaluated on a grid of ``SMIRNOV_GRID`` values
    of v first; the sum runs over the v between the grid points around those whose term is at
    least ``SMIRNOV_TOLERANCE / count`` of the largest (every term outside is smaller, so
    together they are less than ``SMIRNOV_TOLERANCE`` of the sum), ``SMIRNOV_CHUNK`` at a
    time."""
    count = n - math.floor(n * d)
    lo, hi = 0, count - 1
    if count > SMIRNOV_GRID and n * d * d > 2.0:
        grid = np.linspace(0, count - 1, SMIRNOV_GRID).round()
        terms = _smirnov_terms(grid, n, d)
        large = np.flatnonzero(terms >= terms.max() * (SMIRNOV_TOLERANCE / count))
        lo = int(grid[max(large[0] - 1, 0)])
        hi = int(grid[min(large[-1] + 1, grid.shape[0] - 1)])
    total = 0.0
    for start in range(lo, hi + 1, SMIRNOV_CHUNK):
        v = np.arange(start, min(start + SMIRNOV_CHUNK, hi + 1), dtype=np.float64)
        total += float(_smirnov_terms(v, n, d).sum())
    return float(d * total)


def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: scipy's own value, except in the slow exact-Smirnov
    range for large n (see above), where the same sum is evaluated vectorised."""
    size = int(n)
    if FAST_SMIRNOV_MIN_N <= size <= SMIRNOV_MAX_COMPUTE_N and 0.0 < d < 0.5:
        t = size * d
        if 2.2 <= t * d < 370.0 and math.floor(t) >= 3 and t < size - 1 \
                and -2.0 * size * d * d >= _MINLOG:
            prob = 2.0 * smirnov_sum(size, d)
            if prob >= _TINY:
                return float(np.clip(prob, 0.0, 1.0))
    return float(stats.kstwo.sf(d, n))


# PSI --------------------------------------------------------------------------------------

def sturges_edges(lo: float, hi: float, size: int, integer: bool) -> np.ndarray:
    """``np.histogram_bin_edges(a, bins="sturges")`` for an array with this min, max and size."""
    first, last = lo, hi
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = np.float64(hi - lo) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil(np.float64(last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)


def histogram_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for already sorted values (last bin closed)."""
    cum = np.concatenate((np.searchsorted(sorted_values, edges[:-1], side="left"),
                          np.searchsorted(sorted_values, edges[-1:], side="right")))
    return np.diff(cum)


def fill_empty_shares(shares: np.ndarray) -> np.ndarray:
    """Evidently's replacement of empty-bin shares (``feel_zeroes``)."""
    shares = shares.copy()
    smallest = shares[shares != 0].min()
    shares[shares == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return shares


def psi_from_shares(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    ref_shares, cur_shares = fill_empty_shares(ref_shares), fill_empty_shares(cur_shares)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def _category_counts(reference: Sample, current: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Counts in one bin per distinct value seen on either side."""
    if isinstance(reference, NumericSample):
        rv, rc = reference.counts()
        cv, cc = current.counts()
        keys = np.union1d(rv, cv)
        ref_counts = np.zeros(keys.shape[0], dtype=np.int64)
        cur_counts = np.zeros(keys.shape[0], dtype=np.int64)
        ref_counts[np.searchsorted(keys, rv)] = rc
        cur_counts[np.searchsorted(keys, cv)] = cc
    else:
        ref_map, cur_map = reference.as_dict(), current.as_dict()
        keys_list = list(dict.fromkeys([*reference.keys, *current.keys]))
        ref_counts = np.array([ref_map.get(k, 0) for k in keys_list], dtype=np.int64)
        cur_counts = np.array([cur_map.get(k, 0) for k in keys_list], dtype=np.int64)
    return ref_counts, cur_counts


def psi(reference: Sample, current: Sample) -> float:
    """Evidently's PSI (``psi_stat_test``) of two samples of one column."""
    if isinstance(reference, NumericSample) and \
            reference.more_distinct_than(PSI_CATEGORICAL_MAX_DISTINCT):
        lo = min(reference.values[0], current.values[0])
        hi = max(reference.values[-1], current.values[-1])
        edges = sturges_edges(float(lo), float(hi), reference.n + current.n,
                              reference.integer and current.integer)
        ref_shares = histogram_sorted(reference.values, edges) / reference.n
        cur_shares = histogram_sorted(current.values, edges) / current.n
    else:
        ref_counts, cur_counts = _category_counts(reference, current)
        ref_shares, cur_shares = ref_counts / reference.n, cur_counts / current.n
    return psi_from_shares(ref_shares, cur_shares)


def psi_quantile(reference: Sample, current: Sample, quantiles: int = 10) -> float:
    """PSI over bins cut at the reference deciles (the credit-risk convention; not Evidently's).

    Interior edges are ``np.quantile(reference, [0.1, ..., 0.9])`` (linear interpolation),
    repeated edges merged; the outer bins are open, so current values outside the reference
    range still count. A value equal to an edge falls in the bin above it. Categorical columns
    use one bin per category. Empty shares are replaced as Evidently does, so values are
    comparable with ``psi``.
    """
    if not isinstance(reference, NumericSample):
        return psi(reference, current)
    edges = np.unique(np.quantile(reference.values, np.arange(1, quantiles) / quantiles))
    ref_counts = np.diff(np.concatenate(([0], np.searchsorted(reference.values, edges, "left"),
                                         [reference.n])))
    cur_counts = np.diff(np.concatenate(([0], np.searchsorted(current.values, edges, "left"),
                                         [current.n])))
    return psi_from_shares(ref_counts / reference.n, cur_counts / current.n)


# Effect size -----------------------------------------------------------------------------

def total_variation(reference: Sample, current: Sample) -> float:
    """Half the sum of the absolute differences of the two samples' shares, one bin per
    distinct value: the largest difference, over every set of values, in the share of rows
    falling in it. The KS statistic is the same largest difference over half-lines
    ``(-inf, v]`` only, so both are on one scale in [0, 1]."""
    ref_counts, cur_counts = _category_counts(reference, current)
    return float(0.5 * np.abs(ref_counts / reference.n - cur_counts / current.n).sum())


def effect_size(reference: Sample, current: Sample, ks: float | None = None) -> float:
    """The scale-free size of a column's drift that ``[drift] min_effect`` is held against:
    the KS statistic for a numeric column (``ks``, when it is computed already), the total
    variation distance for a categorical one."""
    if isinstance(reference, NumericSample):
        return ks_statistic(reference, current) if ks is None else ks
    return total_variation(reference, current)


# Chi-square test of homogeneity ----------------------------------------------------------

def chi2_homogeneity_pvalue(reference: Sample, current: Sample) -> float:
    """Pearson's chi-square test that both samples come from one categorical distribution.

    A two-sample test (the reference is a sample too), unlike Evidently's ``chisquare``, which
    tests the current counts against the reference shares taken as exact and so rejects far
    more often than its level when the reference is not much larger than the current window.
    """
    ref_counts, cur_counts = _category_counts(reference, current)
    if ref_counts.shape[0] < 2:
        return 1.0
    table = np.vstack([ref_counts, cur_counts])
    return float(stats.chi2_contingency(table, correction=False).pvalue)


# Evidently's other tests, by name ---------------------------------------------------------

def evidently_test(method: str, reference: Any, current: Any, categorical: bool,
                   threshold: float | None) -> tuple[float, bool, float]:
    """Run one of Evidently's registered stat tests on prepared (NaN-free) pandas Series.

    Returns ``(score, drifted, threshold)`` as Evidently reports them.
    """
    # Late, here and in the two functions below: Evidently takes seconds to import, and only
    # its own tests need it.
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    test = get_stattest(reference, current, kind, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = test(reference, current, kind, threshold)
    return float(result.drift_score), bool(result.drifted), float(result.actual_threshold)


def evidently_supports(method: str, categorical: bool) -> bool:
    """Whether Evidently has a test of this name for this kind of column."""
    # Late: see evidently_test.
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    kinds = _registered_stat_tests.get(method)
    if kinds is None:
        return False
    return (ColumnType.Categorical if categorical else ColumnType.Numerical) in kinds


def evidently_methods() -> list[str]:
    """The names of Evidently's registered stat tests."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests  # late
    return sorted(_registered_stat_tests)


def sample_to_pandas(sample: Sample):
    """The prepared column as Evidently's stat tests receive it (a pandas Series)."""
    import pandas as pd  # late: only Evidently's tests take pandas
    if isinstance(sample, NumericSample):
        values = sample.values.astype(np.int64) if sample.integer else sample.values
        return pd.Series(values)
    return pd.Series(np.repeat(np.array(sample.keys, dtype=object), sample.counts))

