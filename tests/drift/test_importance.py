"""Importance-aware drift: each fitted version stores its permutation importances in its
reference profile; drift in a feature the model ignores is reported but does not trigger
retraining under ``[drift] min_importance``."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retrain.data import Schema
from retrain.drift import compute_drift
from retrain.drift.profile import ReferenceProfile, build_profile
from retrain.estimators import DEFAULT_SOURCE
from retrain.training.fit import FitJob, fit
from retrain.training.importance import permutation_importance

SCHEMA = Schema(("signal", "weak", "noise", "colour"), ("colour",))


def rows(rng: np.random.Generator, n: int, noise_shift: float = 0.0,
         signal_shift: float = 0.0) -> pl.DataFrame:
    """The label depends strongly on ``signal``, a little on ``weak`` and ``colour``, not at
    all on ``noise``."""
    signal = rng.standard_normal(n) + signal_shift
    weak = rng.standard_normal(n)
    colour = rng.choice(["red", "green"], n)
    logit = 2.5 * signal + 0.5 * weak + 0.7 * (colour == "red")
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame({"signal": signal, "weak": weak,
                         "noise": rng.standard_normal(n) + noise_shift, "colour": colour,
                         "y": y})


@pytest.fixture(scope="module")
def fitted():
    """A LightGBM version fitted as a run fits it, and its stored profile read back."""
    rng = np.random.default_rng(11)
    train, holdout = rows(rng, 6000), rows(rng, 3000)
    reference = build_profile(pl.concat([train, holdout]), SCHEMA, max_rows=None, report_rows=100)
    job = FitJob("m", "lightgbm", {"n_estimators": 60}, 1, DEFAULT_SOURCE, "binary", "y",
                 SCHEMA, train, holdout, reference)
    result = fit(job)
    return result, ReferenceProfile.from_bytes(result.reference_profile), rng


def test_a_fitted_versions_profile_stores_its_permutation_importances(fitted):
    result, profile, _ = fitted
    stored = profile.meta["importance"]
    assert stored["metric"] == "roc_auc" and stored["repeats"] == 3 and stored["rows"] == 2000
    assert stored["baseline"] == pytest.approx(result.metrics["roc_auc"], abs=0.02)
    values = profile.importance
    assert set(values) == set(SCHEMA.features)
    assert values["signal"] > 0.1 > values["weak"] > values["noise"]
    assert abs(values["noise"]) < 0.005
    # Seeded: the same importances again.
    holdout = rows(np.random.default_rng(0), 3000)
    y = holdout["y"].to_numpy()
    assert permutation_importance(result.trained, holdout, y) == \
        permutation_importance(result.trained, holdout, y)


def test_drift_in_a_feature_the_model_ignores_is_reported_but_does_not_trigger(fitted):
    _, profile, rng = fitted
    current = rows(rng, 5000, noise_shift=1.0)
    default = compute_drift(profile, current)
    assert default.detected and default.drifted_features == ["noise"]
    shares = {f.feature: f.importance for f in default.features}
    assert sum(shares.values()) == pytest.approx(1.0) and shares["noise"] < 0.05 < shares["signal"]

    gated = compute_drift(profile, current, min_importance=0.05)
    assert gated.drifted_features == ["noise"] and gated.below_importance == ["noise"]
    assert not gated.detected
    noise = next(f for f in gated.features if f.feature == "noise")
    assert noise.drifted and noise.below_importance
    assert gated.drifted_values()[0]["below_importance"]

    # Drift in the feature the model relies on triggers under the same setting, ranked first.
    important = compute_drift(profile, rows(rng, 5000, noise_shift=1.0, signal_shift=0.5),
                              min_importance=0.05)
    assert important.detected and set(important.drifted_features) == {"signal", "noise"}
    assert important.below_importance == ["noise"]
    ranks = {f.feature: f.rank for f in important.features}
    assert ranks["signal"] == 1


def test_without_importances_nothing_is_gated_and_features_rank_by_effect(fitted):
    _, profile, rng = fitted
    old = ReferenceProfile.from_bytes(  # a profile written before importances existed
        ReferenceProfile(profile.schema, profile.features, profile.rows, profile.window_rows,
                         profile.max_rows).to_bytes())
    assert old.importance is None
    current = rows(rng, 5000, noise_shift=1.0)
    report = compute_drift(old, current, min_importance=0.05)
    assert report.detected and report.below_importance == []
    noise = next(f for f in report.features if f.feature == "noise")
    assert noise.importance is None and noise.impact is None and noise.rank == 1
