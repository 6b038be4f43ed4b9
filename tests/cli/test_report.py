"""`retrain report MODEL --html PATH`: a model's history on one page (its evaluations, the drift
of each run, its live metric per day, its promotions and rejections), and its versions as a
table; every pipeline run writes the same page beside the model's reports."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta

from retrain.cli.main import main
from retrain.experiments import ABTestingManager
from retrain.pipeline import run_pipeline
from retrain.reporting.history import drift_checks, evaluations, live_per_day, marks


def test_the_history_page_shows_evaluations_drift_live_metrics_and_changes(workspace,
                                                                           drift_month, tmp_path):
    run_pipeline(workspace)
    drift_month(workspace)
    run_pipeline(workspace, reason="schedule")
    production = workspace.registry.production_version("lightgbm")
    manager = ABTestingManager(workspace=workspace)
    at = production.promoted_at + timedelta(minutes=1)
    manager.log_predictions([{"request_id": f"r{i}", "model_name": "lightgbm",
                              "version_id": production.version_id, "variant": "production",
                              "prediction": float(i % 2), "probability": 0.6, "at": at}
                             for i in range(10)])
    manager.log_feedback([{"request_id": f"r{i}", "label": 1.0, "at": at} for i in range(10)])

    config = str(workspace.settings.base_dir / "retrain.toml")
    page = tmp_path / "lightgbm.html"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["--config", config, "report", "lightgbm", "--html", str(page), "--json"])
    assert rc == 0, err.getvalue()
    document = json.loads(out.getvalue())
    assert [v["version"] for v in document["versions"]] == ["lightgbm-v1", "lightgbm-v2"]
    assert document["versions"][1]["status"] == "production" and document["versions"][1]["value"] > 0.5
    html = page.read_text()
    assert "plotly" in html and "lightgbm: history" in html and "lightgbm-v2" in html

    evaluated = evaluations(workspace, "lightgbm")
    assert [e["candidate"] for e in evaluated] == ["lightgbm-v1", "lightgbm-v2"]
    assert evaluated[1]["production"] == "lightgbm-v1"  # v1's numbers on later data
    assert evaluated[1]["production_metrics"]["roc_auc"] < evaluated[1]["candidate_metrics"]["roc_auc"]
    runs = workspace.settings.resolve(workspace.settings.drift.reports_dir) / "lightgbm" / "runs"
    checks = drift_checks("lightgbm", runs)
    assert len(checks) == 2 and checks[1]["detected"] and checks[1]["top"]
    assert live_per_day(workspace, "lightgbm") == [
        {"day": f"{at:%Y-%m-%d}", "outcomes": 10, "value": 0.5, "metric": "accuracy"}]
    assert [m["action"] for m in marks(workspace, "lightgbm")] == ["promoted", "promoted"]
    # The pipeline wrote the page beside the model's reports too.
    assert (runs.parent / "history.html").read_text().count("lightgbm-v2") >= 1
