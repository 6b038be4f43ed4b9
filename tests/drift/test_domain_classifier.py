"""The domain classifier: a change in how features go together, invisible to every marginal
test, is caught by a classifier that tells current rows from reference rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift import compute_drift
from retrain.drift.domain import auc_interval
from retrain.drift.profile import build_profile
from retrain.stats.paired import delong_interval

METHODS = ["ks", "psi", "domain_classifier"]


def window(rng: np.random.Generator, n: int, rho: float) -> pl.DataFrame:
    """``a`` and ``b`` N(0, 1) with correlation ``rho``; four independent N(0, 1) features and a
    categorical one."""
    a = rng.standard_normal(n)
    b = rho * a + np.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    columns = {"a": a, "b": b, **{f"z{i}": rng.standard_normal(n) for i in range(4)}}
    return pl.DataFrame({**columns, "colour": rng.choice(["red", "green", "blue"], n)})


def test_a_flipped_correlation_is_missed_by_every_marginal_test_and_caught_by_the_classifier():
    rng = np.random.default_rng(4)
    reference, current = window(rng, 20_000, 0.8), window(rng, 20_000, -0.8)
    report = compute_drift(reference, current, methods=METHODS)
    # No marginal test finds anything, not even without the effect-size gate.
    ungated = compute_drift(reference, current, methods=("ks", "psi"), min_effect=0)
    assert ungated.drifted_features == [] and not ungated.detected
    assert report.drifted_features == [] and all(f.psi < 0.01 for f in report.features
                                                   if f.kind == "numeric")
    domain = report.domain
    assert domain is not None and domain.detected and report.detected
    assert domain.lower > 0.55 and domain.lower < domain.auc < domain.upper
    assert (domain.reference_rows, domain.current_rows, domain.folds) == (10_000, 10_000, 5)
    assert {f["feature"] for f in domain.top_features[:2]} == {"a", "b"}
    assert report.as_dict()["domain_classifier"]["detected"]
    assert report.thresholds["domain_classifier"] == 0.55


def test_the_classifier_does_not_alarm_on_stationary_data_and_its_threshold_is_configurable():
    rng = np.random.default_rng(5)
    reference, current = window(rng, 8000, 0.8), window(rng, 8000, 0.8)
    report = compute_drift(reference, current, methods=METHODS)
    assert not report.domain.detected and not report.detected
    assert report.domain.lower < 0.5 < report.domain.upper
    strict = compute_drift(reference, current, methods=METHODS,
                           thresholds={"domain_classifier": report.domain.lower - 0.01})
    assert strict.domain.detected and strict.detected and strict.drifted_features == []


def test_a_profile_reference_gives_its_joint_row_sample():
    rng = np.random.default_rng(6)
    schema = Schema(tuple(window(rng, 10, 0.8).columns), ("colour",))
    profile = build_profile(window(rng, 20_000, 0.8), schema, max_rows=None, report_rows=3000)
    report = compute_drift(profile, window(rng, 20_000, -0.8), methods=METHODS)
    assert report.domain.reference_rows == 3000 and report.domain.detected
    # One column (prediction drift, say) has no joint distribution: the classifier is skipped.
    single = compute_drift(window(rng, 2000, 0.8).select("a"), window(rng, 2000, 0.8).select("a"),
                           methods=METHODS)
    assert single.domain is None


def test_the_auc_interval_is_delongs():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 3000)
    scores = y * 0.4 + rng.uniform(size=3000)
    auc, lower, upper = auc_interval(y, scores)
    assert auc == pytest.approx(roc_auc_score(y, scores))
    # DeLong's paired interval against a constant score is the single AUC's, shifted by 0.5.
    paired = delong_interval(y, np.full(3000, 0.5), scores)
    assert (lower, upper) == pytest.approx((paired.lower + 0.5, paired.upper + 0.5))


def test_domain_classifier_is_a_drift_method_of_the_configuration():
    assert "domain_classifier" in DriftConfig(methods=METHODS).methods


def test_retrain_drift_and_the_dashboard_show_effect_importance_and_the_classifier(
        make_workspace, drift_month, monkeypatch, capsys):
    from retrain.drift.check import check_drift
    from retrain.pipeline import run_pipeline
    from retrain.reporting.model import drift_markdown
    from retrain.triggers.volume import VolumeCheck
    from retrain_prefect.cli import main

    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    ws = make_workspace()
    run_pipeline(ws, ["lightgbm"], reason="manual")
    drift_month(ws)
    config = ws.settings.base_dir / "retrain.toml"
    config.write_text(config.read_text().replace(
        "[drift]\n", '[drift]\nmethods = ["ks", "psi", "domain_classifier"]\nsave_reports = false\n'))
    assert main(["--config", str(config), "drift", "--model", "lightgbm"]) == 1  # drift found
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("feature"))
    assert header.split() == ["feature", "method", "value", "threshold", "effect", "importance",
                              "drifted"]
    assert "domain classifier: ROC AUC" in out and "-> DRIFT" in out
    assert "%" in next(line for line in out.splitlines() if line.startswith("income"))
    ws = type(ws).open(config)
    summary = check_drift(ws, "lightgbm").summary()
    markdown = drift_markdown(summary, VolumeCheck(model="lightgbm", met=False, new_rows=0,
                                                   threshold=1))
    assert "## Domain classifier: DRIFT" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| feature |"))
    assert {"effect", "importance", "rank"} <= {c.strip() for c in header.split("|")}
