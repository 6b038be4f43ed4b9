"""What a run shows in the Prefect dashboard: per-model artifacts under stable keys, and the
report files they link to.

Keys are stable per model (``retrain-summary-<model>``, ``retrain-metrics-<model>``,
``retrain-report-<model>``, ``retrain-drift-<model>``), so the Artifacts page shows each
model's history across runs. Prefect allows lowercase letters, digits and dashes in keys.
"""

from __future__ import annotations

import re

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.utilities.urls import url_for

from retrain.pipeline.context import RunContext
from retrain.pipeline.document import RunDocument
from retrain.pipeline.report_files import RunReports
from retrain.reporting.history import version_rows
from retrain.reporting.model import (drift_markdown, drift_report_links, metric_rows,
                                     model_summary_markdown)
from retrain.reporting.run import run_summary_markdown
from retrain.triggers.report import TriggerReport
from retrain.workspace import Workspace

RUN_SUMMARY_KEY = "retraining-summary"


def model_slug(model: str) -> str:
    """A model name in the characters Prefect allows in keys (``random_forest`` ->
    ``random-forest``)."""
    return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"


def artifact_key(kind: str, model: str) -> str:
    """``retrain-<kind>-<model>`` (``model_slug``)."""
    return f"retrain-{kind}-{model_slug(model)}"


# Publishing ---------------------------------------------------------------------------------

def publish_run(context: RunContext, reports: RunReports, document: RunDocument,
                run_name: str | None = None) -> None:
    """The pipeline run's artifacts, on its own page: a summary of all models, and per model
    a summary, the candidate-vs-production metrics table and a link to its report file. Each
    names the run it belongs to (its history spans runs)."""
    run_url = url_for("flow-run", obj_id=context.run_id) if context.run_id else None
    of_run = f" (run {run_name or context.run_id or 'local'}{', ' + run_url if run_url else ''})"
    create_markdown_artifact(key=RUN_SUMMARY_KEY, markdown=run_summary_markdown(document),
                             description="What the retraining run found and decided, all "
                                         "models" + of_run)
    for name, entry in document.models.items():
        files = reports.files[name]
        link = context.workspace.reports.link  # uploads the file when reports are remote
        markdown_uri = link(files.markdown)
        links = [("report (markdown)", markdown_uri),
                 ("run document (JSON)", link(files.json_document)),
                 *([("model history (HTML, plotly)", link(files.history))]
                   if files.history else []),
                 *drift_report_links(document.triggers.drift.models[name], link)]
        if run_url:
            links.append(("this run in Prefect", run_url))
        create_markdown_artifact(key=artifact_key("summary", name),
                                 markdown=model_summary_markdown(document, name, links),
                                 description=f"{name}: triggers, evaluation and decision{of_run}")
        rows = metric_rows(entry)
        if rows:
            create_table_artifact(key=artifact_key("metrics", name), table=rows,
                                  description=f"{name}: candidate {entry.candidate_version} vs "
                                              f"production {entry.production_version_before or '-'}"
                                              f"{of_run}")
        create_table_artifact(key=artifact_key("history", name),
                              table=version_rows(context.workspace, name),
                              description=f"{name}: its versions, their metrics and dates{of_run}")
        create_link_artifact(key=artifact_key("report", name), link=markdown_uri,
                             link_text=f"{name} report ({document.reason}, {entry.decision})",
                             description=f"Report file of {name}{of_run}")


def publish_checks(checks: TriggerReport, ws: Workspace) -> None:
    """The drift-check run's artifacts: per model, the drift table and the volume count."""
    for name, check in checks.drift.items():
        create_markdown_artifact(key=artifact_key("drift", name),
                                 markdown=drift_markdown(check.summary(), checks.volume[name],
                                                         ws.reports.link),
                                 description=f"{name}: drift and volume of the newest data")
