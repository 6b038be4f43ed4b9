"""Each model's part of a run as files beside its drift reports:
``<[drift] reports_dir>/<model>/runs/<stamp>-<reason>[-<run id>].md`` and ``.json``, and the
model's history page ``<[drift] reports_dir>/<model>/history.html``. With the reports on object
storage they are written to the local staging folder and uploaded (``Workspace.reports``); the
history page first fetches the run documents other workers stored there."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from retrain.pipeline.document import RunDocument
from retrain.records import Record
from retrain.reporting.history import write_history_html
from retrain.reporting.model import drift_report_links, model_summary_markdown
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class ModelReportFiles(Record):
    markdown: str
    json_document: str
    history: str | None = None  # the model's history page (None: it could not be written)


class RunReports(Record):
    """What ``send-notifications`` produced: the summary text and each model's files."""

    summary: str
    label: str
    files: dict[str, ModelReportFiles]


def run_reports_dir(ws: Workspace, name: str) -> Path:
    """``<[drift] reports_dir>/<model>/runs``: beside the model's drift reports, which are
    folders named by timestamp."""
    return ws.reports.root / name / "runs"


def run_label(document: RunDocument, run_id: str | None) -> str:
    stamp = re.sub(r"[^0-9T]", "", (document.started_at or "")[:19]) or "run"
    return f"{stamp}-{document.reason}" + (f"-{str(run_id)[:8]}" if run_id else "")


def write_model_reports(ws: Workspace, document: RunDocument, name: str,
                        label: str) -> ModelReportFiles:
    """The model's part of the run as markdown and as JSON; returns their paths."""
    folder = run_reports_dir(ws, name)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / label
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    drift = document.triggers.drift.models[name]
    md.write_text(model_summary_markdown(document, name,
                                         drift_report_links(drift, ws.reports.link)) + "\n")
    js.write_text(json.dumps(document.model_view(name).to_dict(), indent=2) + "\n")
    history = folder.parent / "history.html"
    try:  # a page for people, never a reason for the run to fail
        ws.reports.fetch(folder, ".json")
        write_history_html(ws, name, history, folder)
    except Exception as exc:  # noqa: BLE001 - logged, and the run goes on
        log.warning("%s: the history page was not written: %s", name, exc)
        history = None
    ws.reports.upload(md, js, history)
    return ModelReportFiles(markdown=str(md), json_document=str(js),
                            history=None if history is None else str(history))


def write_run_reports(ws: Workspace, document: RunDocument, run_id: str | None,
                      summary: str) -> RunReports:
    label = run_label(document, run_id)
    return RunReports(summary=summary, label=label,
                      files={name: write_model_reports(ws, document, name, label)
                             for name in document.models})
