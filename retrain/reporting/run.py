"""A whole run for people: the summary printed by `retrain run` and shown on the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrain.reporting.tables import markdown_table, text_table
from retrain.stats.metrics import BOUNDED_BY_ONE

if TYPE_CHECKING:
    from retrain.pipeline.document import RunDocument


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


DECISION_HEADERS = ["model", "trigger", "production before", "candidate", "candidate metric",
                    "production", "difference", "improvement", "decision", "production now"]


def decision_rows(document: "RunDocument") -> list[list[Any]]:
    rows = []
    for name, m in document.models.items():
        metric = m.metric or "-"
        cand = (m.metrics.candidate or {}).get(metric)
        prod = (m.metrics.production or {}).get(metric)
        improvement = _pct(m.relative_improvement)
        if m.improvement_basis == "error" and metric in BOUNDED_BY_ONE and improvement != "-":
            improvement += " of error"
        rows.append([name, m.trigger or "-", m.production_version_before or "-",
                     m.candidate_version or "-", f"{metric} {_metric(cand)}",
                     _metric(prod), "-" if m.metric_difference is None
                     else f"{m.metric_difference:+.4f}", improvement, m.decision.upper(),
                     m.production_version_after or "-"])
    return rows


def trigger_lines(document: "RunDocument") -> list[str]:
    t = document.triggers
    drift, volume = t.drift, t.volume
    lines = [
        f"drift:  {'DETECTED' if drift.detected else 'not detected'}"
        + (f" (drifted features: {', '.join(drift.drifted_features)})" if drift.drifted_features else ""),
        f"volume: {'met' if volume.met else 'not met'} ({volume.new_rows} new labeled rows, "
        f"threshold {volume.threshold})",
    ]
    if t.performance is not None:
        lines.append(f"performance: {'DEGRADED' if t.performance.triggered else 'ok'}")
    return lines


def run_summary_text(document: "RunDocument") -> str:
    lines = [f"Retraining run ({document.reason}{', forced' if document.forced else ''})"]
    lines += ["  " + x for x in trigger_lines(document)]
    lines.append("")
    lines.append(text_table(DECISION_HEADERS, decision_rows(document)))
    reasons = [f"  {n}: {m.reason}" for n, m in document.models.items() if m.reason]
    if reasons:
        lines += ["", "why:"] + reasons
    return "\n".join(lines)


def run_summary_markdown(document: "RunDocument") -> str:
    lines = [f"# Retraining run: {document.reason}", ""]
    lines += ["## Triggers", ""] + [f"- {x}" for x in trigger_lines(document)] + [""]
    for name, d in document.triggers.drift.models.items():
        if d.features:
            lines += [f"### Drift for {name}", "",
                      markdown_table(["feature", "kind", "PSI", "KS p-value", "drifted"],
                                     [[f.feature, f.kind, "-" if f.psi is None else f.psi,
                                       "-" if f.ks_pvalue is None else f.ks_pvalue,
                                       "yes" if f.drifted else "no"] for f in d.features]), ""]
    lines += ["## Decisions", "", markdown_table(DECISION_HEADERS, decision_rows(document)), ""]
    lines += [f"- **{n}**: {m.reason}" for n, m in document.models.items() if m.reason]
    return "\n".join(lines)
