"""Promotion decisions that are not fooled by noise: paired intervals and guardrails."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.config import PromotionConfig
from retrain.stats.metrics import compute_metrics, metric_value, relative_improvement
from retrain.promotion import decide
from retrain.stats.paired import bootstrap_interval, delong_interval, improvement_interval


def _slow_delong_variance(y, a, b):
    """DeLong et al. (1988) straight from the definition, O(m*n): the reference."""
    pos, neg = y == 1, y == 0
    comps = []
    for s in (b, a):  # challenger, champion
        x, z = s[pos][:, None], s[neg][None, :]
        psi = (x > z) + 0.5 * (x == z)
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))
    v10 = np.cov(np.vstack([comps[0][0], comps[1][0]]))
    v01 = np.cov(np.vstack([comps[0][1], comps[1][1]]))
    m, n = pos.sum(), neg.sum()
    return (v10[0, 0] + v10[1, 1] - 2 * v10[0, 1]) / m + (v01[0, 0] + v01[1, 1] - 2 * v01[0, 1]) / n


def test_delong_matches_the_definition_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a = np.round(rng.uniform(size=400) * 0.5 + 0.3 * y, 2)  # rounded: many ties
    b = np.round(rng.uniform(size=400) * 0.5 + 0.4 * y, 2)
    iv = delong_interval(y, a, b, 0.95)
    auc_a = compute_metrics(y, a)["roc_auc"]
    auc_b = compute_metrics(y, b)["roc_auc"]
    assert iv.difference == pytest.approx(auc_b - auc_a, rel=1e-12)
    half = 1.959963984540054 * np.sqrt(_slow_delong_variance(y, a, b))
    assert iv.lower == pytest.approx(iv.difference - half, rel=1e-9)
    assert iv.upper == pytest.approx(iv.difference + half, rel=1e-9)


def test_bootstrap_agrees_with_delong_roughly():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 1500)
    p = 1 / (1 + np.exp(-(2 * y - 1)))
    a = np.clip(p + rng.normal(0, 0.3, 1500), 0.001, 0.999)
    b = np.clip(p + rng.normal(0, 0.2, 1500), 0.001, 0.999)
    d = delong_interval(y, a, b)
    bs = bootstrap_interval(y, a, b, "roc_auc", samples=400, seed=1)
    assert bs.difference == pytest.approx(d.difference, rel=1e-9)
    assert abs((bs.upper - bs.lower) - (d.upper - d.lower)) < 0.35 * (d.upper - d.lower)


def test_lower_is_better_metrics_are_oriented_as_improvement():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 800)
    good = np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 800)
    bad = np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.05, 800)
    iv = improvement_interval(y, bad, good, "log_loss", samples=200)
    assert iv.method == "bootstrap" and iv.difference > 0 and iv.lower > 0
    assert improvement_interval(y, bad, good, "roc_auc").method == "delong"
    with pytest.raises(ValueError, match="DeLong's interval is for roc_auc"):
        improvement_interval(y, bad, good, "f1", method="delong")


def _evaluation(y, champion, challenger, policy: PromotionConfig, all_metrics: bool = True) -> dict:
    metric = policy.metric_for("binary")
    if all_metrics:
        cand, prod = compute_metrics(y, challenger), compute_metrics(y, champion)
    else:
        cand = {metric: metric_value(metric, y, challenger)}
        prod = {metric: metric_value(metric, y, champion)}
    return {
        "model": "m", "metric": metric, "production_version": "m-v1", "candidate_version": "m-v2",
        "metrics": {"candidate": cand, "production": prod},
        "relative_improvement": relative_improvement(metric, cand[metric], prod[metric]),
        "interval": improvement_interval(y, champion, challenger, metric).as_dict(),
        "guardrails": {},
    }


def test_a_challenger_that_differs_only_by_noise_is_not_promoted():
    """Same true quality, small holdout: the point estimate often clears 5% by luck; the
    interval rule still (almost) never promotes, while the 5% rule alone often would."""
    rng = np.random.default_rng(11)
    policy = PromotionConfig()
    naive = PromotionConfig(require_significance=False)
    trials, lucky, promoted, naive_promoted = 300, 0, 0, 0
    for _ in range(trials):
        n = 120
        signal = rng.normal(size=n)
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-signal))).astype(int)
        champion = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.2, n))))
        challenger = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.2, n))))
        ev = _evaluation(y, champion, challenger, policy, all_metrics=False)
        lucky += ev["relative_improvement"] >= 0.05
        promoted += decide(ev, policy)[0] == "promoted"
        naive_promoted += decide(ev, naive)[0] == "promoted"
    assert lucky >= 30, "the setting must produce lucky point estimates to be a real test"
    assert naive_promoted == lucky
    # One-sided 2.5% at most in expectation; 3% of 300 leaves room for Monte Carlo error.
    assert promoted <= 0.03 * trials, f"{promoted} noise challengers promoted"


def test_a_real_improvement_is_promoted_with_its_interval_in_the_reason():
    rng = np.random.default_rng(12)
    n = 3000
    signal = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-2 * signal))).astype(int)
    champion = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, n))))
    challenger = 1 / (1 + np.exp(-(2 * signal + rng.normal(0, 0.3, n))))
    decision, reason = decide(_evaluation(y, champion, challenger, PromotionConfig()), PromotionConfig())
    assert decision == "promoted" and "significant (95% interval [+" in reason


def test_guardrail_breach_rejects_with_the_reason():
    rng = np.random.default_rng(13)
    n = 3000
    signal = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-2 * signal))).astype(int)
    champion = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, n))))
    # Better ranking, but badly calibrated (overconfident): log loss is much worse.
    challenger = 1 / (1 + np.exp(-(8 * signal + rng.normal(0, 0.3, n))))
    policy = PromotionConfig(guardrails={"log_loss": 0.02})
    from retrain.evaluation import guardrail_checks
    ev = _evaluation(y, champion, challenger, policy)
    ev["guardrails"] = guardrail_checks(ev["metrics"]["candidate"], ev["metrics"]["production"],
                                        policy.guardrails)
    assert ev["relative_improvement"] >= 0.05 and ev["interval"]["lower"] > 0
    decision, reason = decide(ev, policy)
    assert decision == "rejected"
    assert "guardrail breached: log_loss" in reason and "tolerance 2.0%" in reason
    ev["guardrails"] = {}  # evaluated without guardrails
    assert decide(ev, PromotionConfig())[0] == "promoted"
