"""Performance without labels (CBPE): on synthetic data whose labels follow a known P(y | x),
under covariate shift (x moves, P(y | x) stays), the realised metric of a chunk lies inside the
estimate's interval in at least 90% of the chunks, and the estimate follows the realised drop
when the shift moves rows toward the decision boundary."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.stats.cbpe import Calibration, estimate_performance, fit_calibration
from retrain.stats.metrics import compute_metrics

CHUNK = 1000
CHUNKS = 150


def true_probability(x: np.ndarray) -> np.ndarray:
    """P(y = 1 | x): a function of one index of x that the model (trees) only approximates.
    CBPE's premise is that P(y | score) survives the shift; it does when the score orders the
    rows by that index, whatever the shift does to x's distribution."""
    z = 1.8 * x[:, 0] - 1.2 * x[:, 1] - 0.3
    return 1 / (1 + np.exp(-(z + 0.15 * z ** 3 / (1 + np.abs(z)))))


def draw(rng, n: int, shift: np.ndarray = np.zeros(2), scale: float = 1.0):
    x = rng.normal(size=(n, 2)) * scale + shift
    return x, (rng.random(n) < true_probability(x)).astype(int)


@pytest.fixture(scope="module")
def fitted():
    import lightgbm
    rng = np.random.default_rng(11)
    x, y = draw(rng, 12000)
    model = lightgbm.LGBMClassifier(n_estimators=60, num_leaves=8, verbose=-1, random_state=0)
    model.fit(x[:6000], y[:6000])
    holdout = model.predict_proba(x[6000:])[:, 1]
    return model, fit_calibration(holdout, y[6000:], "binary")


def chunk_results(model, calibration, chunks):
    out = []
    for x, y in chunks:
        scores = model.predict_proba(x)[:, 1]
        out.append((estimate_performance(scores, calibration, seed=len(out)),
                    compute_metrics(y, scores)))
    return out


def test_realised_metrics_fall_inside_the_intervals_under_covariate_shift(fitted):
    model, calibration = fitted
    rng = np.random.default_rng(5)
    # Chunks from no shift to a shift of 1.5 standard deviations, in changing directions.
    chunks = [draw(rng, CHUNK, shift=np.array([np.cos(a), np.sin(a)]) * (1.5 * i / CHUNKS))
              for i, a in enumerate(np.linspace(0, 2 * np.pi, CHUNKS))]
    results = chunk_results(model, calibration, chunks)
    for metric in ("roc_auc", "accuracy", "precision", "recall", "f1"):
        inside = [e[metric].interval[0] <= realised[metric] <= e[metric].interval[1]
                  for e, realised in results]
        assert np.mean(inside) >= 0.90, (metric, np.mean(inside))
        # The intervals are not trivially wide.
        widths = [e[metric].interval[1] - e[metric].interval[0] for e, _ in results]
        assert np.median(widths) < 0.12, (metric, np.median(widths))


def test_the_estimate_follows_a_drop_toward_the_decision_boundary(fitted):
    model, calibration = fitted
    rng = np.random.default_rng(8)
    # Rows concentrated near the boundary (z ~ 0): harder to tell apart.
    near = [draw(rng, CHUNK, shift=np.array([0.1, -0.1]), scale=0.35) for _ in range(10)]
    far = [draw(rng, CHUNK) for _ in range(10)]
    for metric in ("roc_auc", "accuracy"):
        est_far = np.mean([e[metric].estimate for e, _ in chunk_results(model, calibration, far)])
        real_far = np.mean([r[metric] for _, r in chunk_results(model, calibration, far)])
        near_results = chunk_results(model, calibration, near)
        est_near = np.mean([e[metric].estimate for e, _ in near_results])
        real_near = np.mean([r[metric] for _, r in near_results])
        assert real_far - real_near > 0.08, (metric, real_far, real_near)  # a real drop
        assert abs((est_far - est_near) - (real_far - real_near)) < 0.04, (
            metric, est_far, est_near, real_far, real_near)


def test_multiclass_estimates_cover_the_realised_metrics():
    import lightgbm
    rng = np.random.default_rng(3)

    def sample(n, shift=0.0):
        x = rng.normal(size=(n, 2)) + shift
        logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]]) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
        return x, np.minimum(y, 2)

    x, y = sample(9000)
    model = lightgbm.LGBMClassifier(n_estimators=50, num_leaves=8, verbose=-1, random_state=0)
    model.fit(x[:6000], y[:6000])
    calibration = fit_calibration(model.predict_proba(x[6000:]), y[6000:], "multiclass")
    inside = {m: [] for m in ("accuracy", "macro_f1", "roc_auc_ovr")}
    for i in range(40):
        cx, cy = sample(CHUNK, shift=np.array([1.0, -0.5]) * i / 40)
        scores = model.predict_proba(cx)
        estimates = estimate_performance(scores, calibration, seed=i)
        realised = compute_metrics(cy, scores, task="multiclass")
        for metric in inside:
            lo, hi = estimates[metric].interval
            inside[metric].append(lo <= realised[metric] <= hi)
    for metric, hits in inside.items():
        assert np.mean(hits) >= 0.90, (metric, np.mean(hits))


def test_the_calibration_travels_as_plain_arrays(fitted):
    _, calibration = fitted
    arrays = calibration.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    again = Calibration.from_arrays(arrays)
    scores = np.linspace(0, 1, 101)
    assert np.array_equal(again.apply(scores), calibration.apply(scores))
    assert Calibration.from_arrays({}) is None
    with pytest.raises(ValueError, match="classifiers, not a regression"):
        fit_calibration(scores, scores, "regression")
