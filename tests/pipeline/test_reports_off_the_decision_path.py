"""Evidently's drift page is rendered after the run's decisions (the write-drift-reports
step): rendering neither delays nor fails them, and the page is there when the run ends."""

from __future__ import annotations

import retrain.drift.report_files as report_files
from retrain.pipeline import run_pipeline

MODEL = "lightgbm"


def test_the_page_is_rendered_after_the_decision_and_cannot_fail_it(make_workspace, drift_month,
                                                                      monkeypatch):
    ws = make_workspace()
    run_pipeline(ws, [MODEL], reason="manual")
    drift_month(ws)
    seen = []
    real = report_files.render_evidently

    def render(*args, **kwargs):
        # What production is when the page is rendered: the decision has been taken.
        seen.append(ws.registry.production_version(MODEL).version_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(report_files, "render_evidently", render)
    document = run_pipeline(ws, [MODEL], reason="schedule")
    assert document.models[MODEL].decision == "promoted"
    assert seen == ["lightgbm-v2"]  # rendered once, after the promotion
    report = document.triggers.drift.models[MODEL].report
    assert report.html and report.html.endswith("report.html")
    assert "<html" in open(report.html, encoding="utf-8").read(2000).lower()

    def broken(*args, **kwargs):
        raise RuntimeError("Evidently is broken today")

    monkeypatch.setattr(report_files, "render_evidently", broken)
    drift_month(ws)
    document = run_pipeline(ws, [MODEL], reason="schedule", force=True)
    assert document.success and document.models[MODEL].decision in ("promoted", "rejected")
    report = document.triggers.drift.models[MODEL].report
    assert report.result and report.html is None  # the numbers are there, the page is not
