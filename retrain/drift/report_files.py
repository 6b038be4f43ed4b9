"""Drift report files: an Evidently HTML report and JSON snapshot, and our full result.

Evidently renders a report on a bounded row sample of each side (``[drift] report_rows``), so
it stays quick on large windows; its numbers are those of the sample. ``drift.json`` holds the
check's own result on the whole (``max_rows``-bounded) windows: the numbers decisions use.

Files go to ``<reports_dir>/<model>/<UTC timestamp>/``: ``report.html``, ``snapshot.json``,
``drift.json``.

The decision needs none of Evidently's page: ``drift.json`` is written with the check, and the
page can be left ``pending`` (``write_reports(defer=True)``) and rendered later by
``render_pending``, after the run's decisions (the pipeline's ``write-drift-reports`` step), so
that rendering neither delays nor fails them.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

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
    # Renders Evidently's report into ``directory`` (then cleared); None once done or when
    # there is nothing to render.
    pending: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def render(self) -> None:
        """Render the pending report, once; a failure is logged (``write_reports``)."""
        job, self.pending = self.pending, None
        if job is not None:
            job()

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
                  rendered: DriftReportFiles | None = None,
                  defer: bool = False) -> DriftReportFiles:
    """Write ``drift.json`` and (from the samples, or copied from ``rendered``) Evidently's
    report into ``directory``; with ``defer`` Evidently's report is left ``pending``. A report
    Evidently cannot render is logged, not raised: the check's result stands without it."""
    directory.mkdir(parents=True, exist_ok=True)
    files = DriftReportFiles(directory, directory / "drift.json")
    files.result.write_text(json.dumps(result, indent=2, default=json_default))
    html, snapshot = directory / "report.html", directory / "snapshot.json"

    def render() -> None:
        if rendered is not None:
            rendered.render()  # the model whose report this one copies comes first
        if rendered is not None and rendered.html is not None and rendered.snapshot is not None:
            shutil.copyfile(rendered.html, html)
            shutil.copyfile(rendered.snapshot, snapshot)
            files.html, files.snapshot = html, snapshot
        elif reference_sample is not None and current_sample is not None:
            try:
                page, snapshot_json = render_evidently(reference_sample, current_sample, schema,
                                                       config)
                html.write_text(page, encoding="utf-8")
                snapshot.write_text(snapshot_json, encoding="utf-8")
                files.html, files.snapshot = html, snapshot
            except Exception as exc:  # noqa: BLE001 - Evidently's failure must not fail the check
                log.warning("Evidently could not render the drift report in %s: %r", directory, exc)

    files.pending = render
    if not defer:
        files.render()
    return files


def render_pending(reports: list[DriftReportFiles | None]) -> int:
    """Render every pending report; returns how many were pending."""
    pending = [r for r in reports if r is not None and r.pending is not None]
    for files in pending:
        files.render()
    return len(pending)
