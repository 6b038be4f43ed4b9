"""The promotion rule near the ceiling: "5% better" of a metric bounded by 1 is taken of its
shortfall from 1 by default (improvement_basis = "error"), so a good production model can be
beaten; "metric" keeps the literal rule, under which 0.953 x 1.05 > 1 can never be reached."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrain.config import PromotionConfig
from retrain.promotion.rule import decide
from retrain.stats.metrics import compute_metrics, relative_improvement
from retrain.stats.paired import improvement_interval


@pytest.mark.parametrize("metric, candidate, production, error, literal", [
    ("roc_auc", 0.972, 0.965, 0.2, 0.007 / 0.965),
    ("accuracy", 0.90, 0.80, 0.5, 0.125),
    ("r2", 0.5, -0.5, 2 / 3, 2.0),
    ("log_loss", 0.2, 0.25, 0.2, 0.2),  # lower is better: a relative reduction either way
    ("rmse", 9.0, 10.0, 0.1, 0.1),
])
def test_the_improvement_on_each_basis(metric, candidate, production, error, literal):
    assert relative_improvement(metric, candidate, production, "error") == pytest.approx(error)
    assert relative_improvement(metric, candidate, production, "metric") == pytest.approx(literal)


def test_nothing_beats_a_perfect_production_model():
    assert relative_improvement("roc_auc", 1.0, 1.0, "error") == 0.0
    assert relative_improvement("roc_auc", 0.99, 1.0, "error") == -math.inf


def test_a_better_model_near_the_ceiling_is_promoted_on_the_error_basis_only():
    rng = np.random.default_rng(5)
    n = 6000
    y = rng.integers(0, 2, n)
    signal = 2 * y - 1
    champion = 1 / (1 + np.exp(-(3.0 * signal + rng.normal(0, 1.0, n))))
    challenger = 1 / (1 + np.exp(-(3.6 * signal + rng.normal(0, 1.0, n))))
    cand, prod = compute_metrics(y, challenger), compute_metrics(y, champion)
    assert prod["roc_auc"] > 0.95 and prod["roc_auc"] * 1.05 > 1  # unreachable literally

    def evaluation(basis: str) -> dict:
        return {"model": "m", "metric": "roc_auc", "production_version": "m-v1",
                "candidate_version": "m-v2", "metrics": {"candidate": cand, "production": prod},
                "relative_improvement": relative_improvement("roc_auc", cand["roc_auc"],
                                                             prod["roc_auc"], basis),
                "improvement_basis": basis, "metric_difference": cand["roc_auc"] - prod["roc_auc"],
                "interval": improvement_interval(y, champion, challenger, "roc_auc").as_dict()}

    verdict, reason = decide(evaluation("error"), PromotionConfig())
    assert verdict == "promoted", reason
    assert "of the shortfall from 1 (needs +5.00%)" in reason and "significant" in reason
    verdict, reason = decide(evaluation("metric"), PromotionConfig(improvement_basis="metric"))
    assert verdict == "rejected" and "(needs +5.00%)" in reason and "shortfall" not in reason
    assert PromotionConfig().improvement_basis == "error"
