"""The KS statistic, found coarse to fine, is scipy's ``ks_2samp`` statistic bit for bit:
continuous and tied values, identical and nested samples, one side much larger, a single
value, gaps that peak inside a block as well as at its edges, and many random samples of
every kind around the block size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from retrain.stats.drift import KS_BLOCK, NumericSample, ks_statistic


def sample(values) -> NumericSample:
    return NumericSample(np.sort(np.asarray(values, dtype=np.float64)))


def cases():
    rng = np.random.default_rng(42)
    yield "continuous", rng.normal(size=50_000), rng.normal(0.02, 1, size=40_000)
    yield "rounded", np.round(rng.normal(size=30_000), 1), np.round(rng.normal(0.1, 1, 30_000), 1)
    yield "few integers", rng.integers(0, 4, 9_000), rng.integers(0, 5, 11_000)
    same = rng.normal(size=20_000)
    yield "identical", same, same.copy()
    yield "nested", same, same[:7_000]
    yield "one much larger", rng.normal(size=200_000), rng.normal(0.3, 1, size=300)
    yield "a single value", [1.0], rng.normal(size=5_000)
    yield "largest gap at the first value", [0.0, 30.0], [10.0, 20.0, 40.0]
    # A narrow bump: the largest gap lies strictly inside one block of the coarse pass.
    base = rng.uniform(0, 1, 64 * KS_BLOCK)
    bump = np.concatenate([base, np.full(40, 0.5000001)])
    yield "gap inside a block", base, bump
    for n1, n2 in rng.integers(2, 3000, (20, 2)):
        yield f"random {n1}x{n2}", rng.normal(size=n1), rng.standard_t(3, size=n2)


@pytest.mark.parametrize("name, reference, current", list(cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_equals_scipy_bit_for_bit(name, reference, current):
    ours = ks_statistic(sample(reference), sample(current))
    theirs = stats.ks_2samp(reference, current, method="asymp").statistic
    assert ours == float(theirs), name


def random_cases(count: int):
    """Sizes from 1 to a few blocks (and some far larger), continuous, few integers, rounded,
    shared values, a pile-up at one value: where the grids' brackets, the exact ends and the
    values inside a block each decide the statistic."""
    rng = np.random.default_rng(123)
    for i in range(count):
        n1, n2 = rng.integers(1, 12 * KS_BLOCK, 2) if i % 5 else rng.integers(1, 20_000, 2)
        kind = i % 5
        if kind == 0:
            a, b = rng.normal(size=n1), rng.normal(rng.uniform(-0.3, 0.3), 1, n2)
        elif kind == 1:
            a = rng.integers(0, rng.integers(1, 30), n1).astype(float)
            b = rng.integers(0, rng.integers(1, 30), n2).astype(float)
        elif kind == 2:
            a, b = rng.normal(size=n1).round(1), rng.normal(0.1, 1, n2).round(1)
        elif kind == 3:  # half of the current drawn from the reference's own values
            a = rng.normal(size=n1)
            b = np.concatenate([rng.choice(a, max(1, n2 // 2)), rng.normal(size=n2 - n2 // 2)])
        else:
            a = rng.uniform(size=n1)
            b = np.concatenate([rng.uniform(size=n2), np.full(rng.integers(1, 200), rng.uniform())])
        yield a, b


def test_equals_scipy_bit_for_bit_on_random_samples():
    for i, (reference, current) in enumerate(random_cases(1500)):
        ours = ks_statistic(sample(reference), sample(current))
        theirs = stats.ks_2samp(reference, current, method="asymp").statistic
        assert ours == float(theirs), (i, reference.size, current.size)


@pytest.mark.parametrize("distinct", [1, 19, 20, 21, 22, 500])
def test_more_distinct_than_agrees_with_counting(distinct):
    values = np.repeat(np.arange(distinct, dtype=np.float64), 3)
    s = sample(values)
    assert s.more_distinct_than(20) == (distinct > 20)
    s.distinct()  # counted: the same answer from the counts
    assert s.more_distinct_than(20) == (distinct > 20)
