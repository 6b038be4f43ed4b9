"""What a run shows in the Prefect dashboard: per-model artifacts under stable keys, and the
report files they link to.

Keys are stable per model (``retrain-summary-<model>``, ``retrain-metrics-<model>``,
``retrain-report-<model>``, ``retrain-drift-<model>``), so the Artifacts page shows each
model's history across runs. Prefect allows lowercase letters, digits and dashes in keys.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.utilities.urls import url_for

from retrain.pipeline.report_files import run_label, write_model_reports
from retrain.reporting.model import (drift_markdown, drift_report_links, metric_rows,
                                     model_summary_markdown)
from retrain.reporting.run import run_summary_markdown
from retrain.workspace import Workspace

RUN_SUMMARY_KEY = "retraining-summary"


def artifact_key(kind: str, model: str) -> str:
    """``retrain-<kind>-<model>`` in the characters Prefect allows (``random_forest`` ->
    ``random-forest``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"
    return f"retrain-{kind}-{slug}"


# Publishing ---------------------------------------------------------------------------------

def publish_run(ws: Workspace, document: dict[str, Any], pipeline_run_id: UUID | None) -> None:
    """The run's artifacts: a summary of all models, and per model a summary, the
    candidate-vs-production metrics table and a link to the report."""
    create_markdown_artifact(key=RUN_SUMMARY_KEY, markdown=run_summary_markdown(document),
                             description="What the retraining run found and decided, all models")
    run_url = url_for("flow-run", obj_id=pipeline_run_id) if pipeline_run_id else None
    label = run_label(document, pipeline_run_id)
    for name, entry in document["models"].items():
        files = write_model_reports(ws, document, name, label)
        links = [("report (markdown)", files["markdown"].as_uri()),
                 ("run document (JSON)", files["json"].as_uri()),
                 *drift_report_links(document["triggers"]["drift"]["models"][name])]
        if run_url:
            links.append(("this run in Prefect", run_url))
        create_markdown_artifact(key=artifact_key("summary", name),
                                 markdown=model_summary_markdown(document, name, links),
                                 description=f"{name}: triggers, evaluation and decision")
        rows = metric_rows(entry)
        if rows:
            create_table_artifact(key=artifact_key("metrics", name), table=rows,
                                  description=f"{name}: candidate {entry['candidate_version']} vs "
                                              f"production {entry['production_version_before'] or '-'}")
        create_link_artifact(key=artifact_key("report", name), link=files["markdown"].as_uri(),
                             link_text=f"{name} report ({document['reason']}, {entry['decision']})",
                             description=f"Report file of {name} for this run")


def publish_checks(drift: dict[str, dict], volume: dict[str, dict]) -> None:
    """The drift-check run's artifacts: per model, the drift table and the volume count."""
    for name in drift:
        create_markdown_artifact(key=artifact_key("drift", name),
                                 markdown=drift_markdown(name, drift[name], volume[name]),
                                 description=f"{name}: drift and volume of the newest data")
