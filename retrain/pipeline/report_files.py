"""One model's part of a run as files beside its drift reports:
``<[drift] reports_dir>/<model>/runs/<stamp>-<reason>.md`` and ``.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

from retrain.reporting.model import drift_report_links, model_document, model_summary_markdown
from retrain.workspace import Workspace


def run_reports_dir(ws: Workspace, name: str) -> Path:
    """``<[drift] reports_dir>/<model>/runs``: beside the model's drift reports, which are
    folders named by timestamp."""
    return ws.settings.resolve(ws.settings.drift.reports_dir) / name / "runs"


def write_model_reports(ws: Workspace, document: dict[str, Any], name: str,
                        label: str) -> dict[str, Path]:
    """The model's part of the run as markdown and as JSON; returns their paths."""
    folder = run_reports_dir(ws, name)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / label
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(model_summary_markdown(document, name, drift_report_links(
        document["triggers"]["drift"]["models"][name])) + "\n")
    js.write_text(json.dumps(model_document(document, name), indent=2, default=str) + "\n")
    return {"markdown": md, "json": js}


def run_label(document: dict[str, Any], run_id: UUID | None) -> str:
    stamp = re.sub(r"[^0-9T]", "", (document.get("started_at") or "")[:19]) or "run"
    return f"{stamp}-{document['reason']}" + (f"-{str(run_id)[:8]}" if run_id else "")
