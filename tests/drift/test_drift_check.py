"""The drift check of a workspace: the stored reference profile gives the numbers recomputing
gives, older versions fall back, label and prediction drift are separate, reports and events,
and the ``retrain drift`` command."""

from __future__ import annotations

import dataclasses
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest

from conftest import SMALL
from retrain.cli import main
from retrain.demo import append_drifted_month, write_workspace
from retrain.drift.check import check_drift
from retrain.pipeline import run_pipeline
from retrain.triggers import RetrainingTriggers
from retrain.workspace import Workspace
from retrain_prefect.events import drift_event

MODEL = "lightgbm"


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """lightgbm bootstrapped on four stable months, then a drifted month appended."""
    directory = tmp_path_factory.mktemp("drift") / "ws"
    config = write_workspace(directory, **SMALL)
    ws = Workspace.open(config)
    ws.settings.drift.save_reports = False
    run_pipeline(ws, models=[MODEL])
    append_drifted_month(directory, index=SMALL["months"], rows=2000)
    return config


def open_ws(config, **drift) -> Workspace:
    ws = Workspace.open(config)
    ws.settings.drift.save_reports = False
    for key, value in drift.items():
        setattr(ws.settings.drift, key, value)
    return ws


def parts(check) -> dict:
    d = check.as_dict()
    return {"features": d["table"], "label": d["label_drift"]["table"],
            "prediction": d["prediction_drift"]["table"]}


def test_profile_gives_the_numbers_recomputing_gives(drifted):
    ws = open_ws(drifted)
    production = ws.registry.production_version(MODEL)
    assert ws.registry.load_profile_bytes(production) is not None
    from_profile = check_drift(ws, MODEL)
    recomputed = check_drift(ws, MODEL, use_profile=False)
    assert (from_profile.reference, recomputed.reference) == ("profile", "window")
    assert parts(from_profile) == parts(recomputed)
    assert from_profile.result.table().equals(recomputed.result.table())


def test_a_version_without_a_profile_reads_its_window(workspace, monkeypatch, drift_month):
    import retrain.training.fit
    monkeypatch.setattr(retrain.training.fit, "_profile_bytes", lambda *a, **k: (None, None))
    workspace.settings.drift.save_reports = False
    run_pipeline(workspace, models=[MODEL])
    production = workspace.registry.production_version(MODEL)
    assert workspace.registry.load_profile_bytes(production) is None
    drift_month(workspace)
    check = check_drift(workspace, MODEL)
    assert check.reference == "window" and check.detected
    assert check.as_dict()["prediction_drift"]["table"]  # holdout predicted again


def test_a_changed_sampling_bound_ignores_the_profile(drifted):
    ws = open_ws(drifted, max_rows=500)
    check = check_drift(ws, MODEL)
    assert check.reference == "window" and check.result.reference_rows == 500


def test_label_and_prediction_drift_are_reported_apart_and_trigger_only_when_asked(drifted):
    ws = open_ws(drifted)
    check = check_drift(ws, MODEL).as_dict()
    assert check["triggered_by"] == ["features"] and check["detected"]
    for part, feature in (("label_drift", "defaulted"), ("prediction_drift", "prediction")):
        assert {r["feature"] for r in check[part]["table"]} == {feature}
        assert feature not in check["drifted_features"]
    assert check["prediction_drift"]["detected"]  # the drifted month moves the scores
    only_predictions = check_drift(open_ws(drifted, trigger_on=["prediction"]), MODEL)
    assert only_predictions.detected and only_predictions.triggered_by == ["prediction"]
    assert only_predictions.drifted_features  # feature drift is still reported
    nothing = check_drift(open_ws(drifted, trigger_on=[]), MODEL)
    assert not nothing.detected


def test_reports_and_event_payloads(drifted):
    ws = open_ws(drifted)
    check = check_drift(ws, MODEL, save_reports=True)
    files = check.reports
    assert files.directory.parent == ws.settings.resolve(".retrain/reports") / MODEL
    assert files.html.read_text().lstrip().lower().startswith("<!doctype html")
    snapshot = json.loads(files.snapshot.read_text())
    assert any("ValueDrift" in m["config"]["type"] for m in snapshot["metrics"])
    saved = json.loads(files.result.read_text())
    assert saved["table"] == check.as_dict()["table"]

    result = check.as_dict()
    assert result["report"]["html"] == str(files.html)
    name, payload = drift_event(check)
    assert name == "retrain.drift.detected"
    assert payload["drifted_features"] == result["drifted_features"]
    assert payload["decision"]["rule"] == "bh" and payload["decision"]["alpha"] == 0.05
    drifted_values = {d["feature"]: d["values"] for d in payload["drifted"]}
    assert set(drifted_values) == set(result["drifted_features"])
    assert all("ks" in v or "chi2_homogeneity" in v for v in drifted_values.values())
    assert payload["report_html"] == str(files.html)
    json.dumps(payload)  # an event payload must be JSON
    rows = check.summary().parts_tables()
    assert {part for part, _ in rows} == {"features", "label", "prediction"}
    assert drift_event(dataclasses.replace(check, detected=False))[0] == "retrain.drift.checked"


def test_should_retrain_uses_the_engine(drifted):
    ws = open_ws(drifted)
    retrain, info = RetrainingTriggers(workspace=ws).should_retrain(
        check_drift=True, check_volume=True, check_performance=True, models=[MODEL])
    entry = info["models"][MODEL]
    assert retrain and "drift" in entry["reasons"] and "performance" in entry["reasons"]
    assert entry["drift"]["decision"] == "bh" and entry["drift"]["table"]
    assert entry["performance"]["significant"] is True


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_cli_exit_status_table_and_html(drifted, tmp_path, monkeypatch):
    monkeypatch.setenv("RETRAIN_DRIFT__SAVE_REPORTS", "false")
    rc, out, err = call("--config", drifted, "drift", "--model", MODEL, "--json")
    assert rc == 1, err
    doc = json.loads(out)
    assert doc["detected"] is True and doc["models"][MODEL]["table"]
    html = tmp_path / "out" / "drift.html"
    rc, out, _ = call("--config", drifted, "drift", "--model", MODEL, "--html", html)
    assert rc == 1 and "DRIFT DETECTED" in out and "threshold" in out and "[prediction]" in out
    assert html.is_file() and html.stat().st_size > 10_000
    rc, _, err = call("--config", drifted, "drift", "--model", "nope")
    assert rc == 2 and "unknown model 'nope'" in err


def test_cli_exit_status_without_drift(workspace):
    workspace.settings.drift.save_reports = False
    run_pipeline(workspace, models=[MODEL])
    config = workspace.settings.base_dir / "retrain.toml"
    rc, out, err = call("--config", config, "drift", "--model", MODEL)
    assert rc == 0, err
    assert "no drift" in out and "no rows newer" in out


def test_each_feature_row_names_the_test_that_decided_it_and_its_cut_off():
    """Under Benjamini-Hochberg a categorical is decided by its chi-square p-value against
    the corrected cut-off, not by PSI or KS; under the share rule by the rule's test."""
    import numpy as np
    import polars as pl
    from retrain.drift.compute import compute_drift
    rng = np.random.default_rng(0)
    ref = pl.DataFrame({"x": rng.normal(size=4000),
                        "c": rng.choice(["a", "b", "c"], 4000, p=[0.5, 0.3, 0.2])})
    cur = pl.DataFrame({"x": rng.normal(size=4000),
                        "c": rng.choice(["a", "b", "c"], 4000, p=[0.42, 0.33, 0.25])})
    report = compute_drift(ref, cur, categorical=["c"], decision="bh", alpha=0.05)
    rows = {r["feature"]: r for r in report.feature_rows()}
    assert rows["c"]["decided_by"] == "chi2_homogeneity" and rows["c"]["drifted"] is True
    assert rows["c"]["statistic"] <= rows["c"]["cutoff"] == report.thresholds["pvalue_cutoff"]
    assert rows["c"]["psi"] < 0.2  # PSI alone would not have called it
    assert rows["x"]["decided_by"] == "ks" and rows["x"]["drifted"] is False
    share = compute_drift(ref, cur, categorical=["c"], decision="share", feature_rule="psi")
    assert {r["feature"]: r["decided_by"] for r in share.feature_rows()} == {"x": "psi", "c": "psi"}


def test_the_production_versions_importances_weigh_its_drifted_features(drifted):
    ws = open_ws(drifted)
    check = check_drift(ws, MODEL)
    rows = {r.feature: r for r in check.summary().features}
    assert check.detected and check.reference == "profile"
    shares = [r.importance for r in rows.values()]
    assert all(s is not None for s in shares) and sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert sorted(r.rank for r in rows.values()) == list(range(1, len(rows) + 1))
    # No feature holds the whole importance: every drifted one is reported, none triggers.
    gated = check_drift(open_ws(drifted, min_importance=1.0), MODEL)
    summary = gated.summary()
    assert gated.drifted_features == check.drifted_features
    assert summary.below_importance == check.drifted_features
    assert not gated.detected and gated.triggered_by == []
    assert "min_importance" in summary.note and check.drifted_features[0] in summary.note


def test_the_domain_classifier_is_its_own_section_of_the_check(drifted):
    check = check_drift(open_ws(drifted, methods=["ks", "psi", "domain_classifier"]), MODEL)
    summary = check.summary()
    domain = summary.domain_classifier
    assert domain is not None and domain.detected and domain.lower > domain.threshold == 0.55
    assert domain.top_features and domain.reference_rows > 0
    assert check.triggered_by == ["features"]
    assert "domain classifier" in summary.rule()
    assert summary.label_drift.table and summary.prediction_drift.table  # parts unchanged
    assert check_drift(open_ws(drifted), MODEL).summary().domain_classifier is None
