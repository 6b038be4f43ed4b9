"""One model's part of a run, for people: its summary, trigger, drift and metric tables.
Pure renderings; the files are written by ``retrain.pipeline.report_files`` and the
dashboard artifacts by ``retrain_prefect``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from retrain.drift.results import FeatureRow, ModelDrift
from retrain.reporting.run import DECISION_HEADERS, decision_rows
from retrain.reporting.tables import markdown_table
from retrain.reporting.tables import number_or_dash as _fmt
from retrain.stats.metrics import relative_improvement
from retrain.triggers.performance import PerformanceCheck
from retrain.triggers.volume import VolumeCheck

if TYPE_CHECKING:
    from retrain.pipeline.document import ModelOutcome, RunDocument


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trigger_rows(drift: ModelDrift, volume: VolumeCheck,
                 performance: PerformanceCheck | None = None) -> list[list[Any]]:
    """One row per trigger: what was measured, against which threshold, and whether it fired."""
    n_features = len(drift.features or [])
    measured = drift.note or (f"{len(drift.drifted_features)}/{n_features} features drifted "
                              f"(share {drift.share:.2f})")
    drifted_segments = [f"{seg.segment}={row.value}: {', '.join(row.drifted_features)}"
                        for seg in drift.segments for row in seg.segments if row.detected]
    if drifted_segments:
        measured += f"; in segments {'; '.join(drifted_segments)}"
    rows = [
        ["drift", measured, "-" if drift.note else drift.rule(),
         "yes" if drift.detected else "no"],
        ["volume", f"{volume.new_rows} new labeled rows"
         + (f" since {volume.since}" if volume.since else ""),
         f"{volume.threshold} rows", "yes" if volume.met else "no"],
    ]
    if performance is not None:
        p = performance
        measured = p.note or ", ".join(
            f"{k} {_number(getattr(p, k))}" for k in ("metric", "at_promotion", "current", "relative_drop")
            if getattr(p, k) is not None)
        if p.rows and not p.note:
            measured += f" on {p.rows} rows of {p.source or 'feature store'}"
        if p.estimated_rows and not p.note:
            realised = f" ({_number(p.realised)})" if p.realised is not None else ""
            lo, hi = p.estimated_interval or (None, None)
            measured += (f": realised on {p.labeled_rows or 0} labeled rows{realised}, estimated "
                         f"without labels on {p.estimated_rows} ({_number(p.estimated)}, "
                         f"interval {_number(lo)} .. {_number(hi)})")
        threshold = (f"drop >= {p.threshold:.0%}, interval above 0"
                     if p.threshold is not None else "-")
        rows.append(["performance", measured, threshold, "yes" if p.triggered else "no"])
    return rows


def model_trigger_rows(document: "RunDocument", name: str) -> list[list[Any]]:
    t = document.triggers
    return trigger_rows(t.drift.models[name], t.volume.models[name],
                        None if t.performance is None else t.performance.models[name])


def feature_table(features: list[FeatureRow]) -> str:
    """The per-feature drift rows as a markdown table."""
    headers = list(FeatureRow.model_fields)
    return markdown_table(headers, [["-" if (v := getattr(f, h)) is None else
                                     ("yes" if v is True else "no" if v is False else _number(v))
                                     for h in headers] for f in features])


def metric_rows(entry: "ModelOutcome") -> list[dict[str, Any]]:
    """Candidate vs production on the same holdout, one row per metric (empty when no
    candidate was evaluated)."""
    candidate, production = entry.metrics.candidate, entry.metrics.production
    if not candidate:
        return []
    rows = []
    for metric in candidate:  # the task's metrics, in their order
        prod = production.get(metric) if production else None
        basis = entry.improvement_basis or "metric"
        rel = relative_improvement(metric, candidate[metric], prod, basis) if prod else None
        rows.append({"metric": metric, "primary": metric == entry.metric,
                     "candidate": round(candidate[metric], 4),
                     "production": None if prod is None else round(prod, 4),
                     "difference": None if prod is None else round(candidate[metric] - prod, 4),
                     "relative_improvement": None if rel is None else round(rel, 4),
                     "improvement_basis": basis})
    return rows


def model_summary_markdown(document: "RunDocument", name: str,
                           links: list[tuple[str, str]]) -> str:
    entry = document.models[name]
    lines = [f"# {name}: {entry.decision.upper()}", "",
             f"Run reason `{document.reason}`{' (forced)' if document.forced else ''}, "
             f"started {document.started_at}; this model was "
             + (f"retrained because: {entry.trigger}." if entry.trigger else "not retrained."),
             "", "## Triggers", "",
             markdown_table(["trigger", "measured", "threshold", "fired"],
                            model_trigger_rows(document, name)),
             ""]
    drift = document.triggers.drift.models[name]
    if drift.features:
        lines += ["### Drift per feature", "", feature_table(drift.features), ""]
    rows = metric_rows(entry)
    if rows:
        lines += ["## Evaluation: candidate vs production on the same holdout", "",
                  markdown_table(["metric", "candidate", "production", "difference",
                                  f"relative improvement (on the {rows[0]['improvement_basis']})"],
                                 [[r["metric"] + (" **(primary)**" if r["primary"] else ""),
                                   _fmt(r["candidate"]), _fmt(r["production"]),
                                   _fmt(r["difference"], "{:+.4f}"),
                                   _fmt(r["relative_improvement"], "{:+.2%}")] for r in rows]),
                  ""]
    lines += ["## Decision", "", markdown_table(DECISION_HEADERS, decision_rows(
        document.model_view(name))), ""]
    if entry.reason:
        lines += [f"Why: {entry.reason}", ""]
    if links:
        lines += ["## Reports", ""] + [f"- [{text}]({url})" for text, url in links]
    return "\n".join(lines)


def file_uri(path: str) -> str:
    return Path(path).resolve().as_uri()


def drift_report_links(drift: ModelDrift, link: Callable[[str], str] = file_uri
                       ) -> list[tuple[str, str]]:
    """Links to the drift check's report files (Evidently HTML, snapshot, our numbers);
    ``link`` makes a file's URL (``Workspace.reports.link``: uploaded to object storage and
    presigned there)."""
    files = drift.report
    if files is None:
        return []
    labels = {"html": "drift report (Evidently HTML)", "snapshot": "drift snapshot (Evidently JSON)",
              "result": "drift numbers (JSON)"}
    return [(text, link(getattr(files, k))) for k, text in labels.items() if getattr(files, k)]


def drift_report_url(drift: ModelDrift, link: Callable[[str], str] = file_uri) -> str | None:
    """The one link a notice gives: the Evidently HTML report, else our numbers (JSON)."""
    files = drift.report
    path = None if files is None else (files.html or files.result)
    return link(path) if path else None


def domain_lines(drift: ModelDrift) -> list[str]:
    """The domain classifier's verdict (``domain_classifier`` in ``[drift] methods``)."""
    d = drift.domain_classifier
    if d is None:
        return []
    return [f"## Domain classifier: {'DRIFT' if d.detected else 'no drift'}", "",
            f"A classifier told current rows from reference rows with ROC AUC {d.auc:.3f} "
            f"({d.confidence:.0%} interval {d.lower:.3f} .. {d.upper:.3f}, {d.folds}-fold, "
            f"{d.reference_rows} / {d.current_rows} rows); drift when the lower bound exceeds "
            f"{d.threshold}.", "",
            markdown_table(["feature it relied on", "share of gain"],
                           [[f.feature, f"{f.importance:.1%}"] for f in d.top_features]), ""]


def segment_lines(drift: ModelDrift) -> list[str]:
    """The segment checks ([drift] segments) as markdown: one table per segment column."""
    lines = []
    for seg in drift.segments:
        lines += [f"## Segments by {seg.segment}"
                  f" (two-level false-discovery control at alpha {seg.alpha})", "",
                  markdown_table(["value", "rows (reference / current)", "p-value (Simes)",
                                  "drifted features", "drifted"],
                                 [[row.value + (f" ({', '.join(row.merged)})" if row.merged else ""),
                                   f"{row.reference_rows} / {row.current_rows}",
                                   f"{row.pvalue:.3g}", ", ".join(row.drifted_features) or "-",
                                   "yes" if row.detected else "no"] for row in seg.segments]),
                  ""]
        if seg.note:
            lines += [seg.note, ""]
    return lines


def drift_markdown(drift: ModelDrift, volume: VolumeCheck,
                   link: Callable[[str], str] = file_uri) -> str:
    """A drift check's result and the volume count, as the drift-check run shows them."""
    lines = [f"# {drift.model}: drift and volume", "",
             markdown_table(["trigger", "measured", "threshold", "fired"],
                            trigger_rows(drift, volume)),
             ""]
    if drift.features:
        lines += [feature_table(drift.features), ""]
    lines += domain_lines(drift) + segment_lines(drift)
    links = drift_report_links(drift, link)
    if links:
        lines += ["## Reports", ""] + [f"- [{text}]({url})" for text, url in links]
    return "\n".join(lines)
