"""Drift report files: an Evidently HTML report and JSON snapshot, and our full result.

Evidently renders a report on a bounded row sample of each side (``[drift] report_rows``), so
it stays quick on large windows; its numbers are those of the sample. ``drift.json`` holds the
check's own result on the whole (``max_rows``-bounded) windows: the numbers decisions use.

Files go to ``<reports_dir>/<model>/<UTC timestamp>/``: ``report.html``, ``snapshot.json``,
``drift.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.serialization import json_default
from retrain.reporting.evidently import render_evidently

log = logging.getLogger("retrain")


@dataclass
class DriftReportFiles:
    directory: Path
    result: Path  # drift.json: the check's own numbers
    html: Path | None = None  # Evidently's HTML report (None if it could not be rendered)
    snapshot: Path | None = None  # Evidently's JSON snapshot

    def as_dict(self) -> dict[str, str | None]:
        return {"directory": str(self.directory), "result": str(self.result),
                "html": None if self.html is None else str(self.html),
                "snapshot": None if self.snapshot is None else str(self.snapshot)}


def report_directory(base: Path, model_name: str, when: datetime | None = None) -> Path:
    """A new folder ``base/<model>/<timestamp>`` (microseconds, so checks never collide)."""
    when = when or datetime.now(timezone.utc)
    path = Path(base) / model_name / when.strftime("%Y%m%dT%H%M%S%fZ")
    suffix = 0
    while path.exists():
        suffix += 1
        path = path.with_name(f"{path.name.split('-')[0]}-{suffix}")
    path.mkdir(parents=True)
    return path


def write_reports(directory: Path, result: dict[str, Any], *,
                  reference_sample: pl.DataFrame | None, current_sample: pl.DataFrame | None,
                  schema: Schema, config: DriftConfig,
                  rendered: DriftReportFiles | None = None) -> DriftReportFiles:
    """Write ``drift.json`` and (from the samples, or copied from ``rendered``) Evidently's
    report into ``directory``. A report Evidently cannot render is logged, not raised: the
    check's result stands without it."""
    directory.mkdir(parents=True, exist_ok=True)
    files = DriftReportFiles(directory, directory / "drift.json")
    files.result.write_text(json.dumps(result, indent=2, default=json_default))
    html, snapshot = directory / "report.html", directory / "snapshot.json"
    if rendered is not None and rendered.html is not None and rendered.snapshot is not None:
        shutil.copyfile(rendered.html, html)
        shutil.copyfile(rendered.snapshot, snapshot)
        files.html, files.snapshot = html, snapshot
    elif reference_sample is not None and current_sample is not None:
        try:
            page, snapshot_json = render_evidently(reference_sample, current_sample, schema, config)
            html.write_text(page, encoding="utf-8")
            snapshot.write_text(snapshot_json, encoding="utf-8")
            files.html, files.snapshot = html, snapshot
        except Exception as exc:  # noqa: BLE001 - Evidently's failure must not fail the check
            log.warning("Evidently could not render the drift report in %s: %r", directory, exc)
    return files
