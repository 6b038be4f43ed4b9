"""One model's part of a run, for people: its summary, trigger, drift and metric tables, and
the drift check's own table. Pure renderings; the files are written by
``retrain.pipeline.report_files`` and the dashboard artifacts by ``retrain_prefect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrain.reporting.run import DECISION_HEADERS, decision_rows
from retrain.reporting.tables import markdown_table
from retrain.stats.metrics import METRICS, relative_improvement


def _fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def drift_rule(drift: dict[str, Any]) -> str:
    """The dataset-level drift rule of a check result, in words."""
    thresholds = drift.get("thresholds") or {}
    rule = drift.get("decision") or "share"
    if rule == "share" and "drift_share" in thresholds:
        return f"share of drifted features >= {thresholds['drift_share']}"
    if rule in ("bh", "bonferroni") and "alpha" in thresholds:
        return f"{'Benjamini-Hochberg' if rule == 'bh' else 'Bonferroni'} at alpha {thresholds['alpha']}"
    return rule


def trigger_rows(document: dict[str, Any], name: str) -> list[list[Any]]:
    """One row per trigger: what was measured, against which threshold, and whether it fired."""
    triggers = document["triggers"]
    drift = triggers["drift"]["models"][name]
    volume = triggers["volume"]["models"][name]
    n_features = len(drift.get("features") or [])
    measured = (drift["note"] if drift.get("note") else
                f"{len(drift['drifted_features'])}/{n_features} features drifted "
                f"(share {drift['share']:.2f})")
    rows = [
        ["drift", measured, drift_rule(drift) if not drift.get("note") else "-",
         "yes" if drift["detected"] else "no"],
        ["volume", f"{volume['new_rows']} new labeled rows"
         + (f" since {volume['since']}" if volume.get("since") else ""),
         f"{volume['threshold']} rows", "yes" if volume["met"] else "no"],
    ]
    if "performance" in triggers:
        perf = triggers["performance"]["models"][name]
        measured = perf.get("note") or ", ".join(
            f"{k} {_number(perf[k])}" for k in ("metric", "at_promotion", "current", "relative_drop")
            if perf.get(k) is not None)
        if perf.get("rows") and not perf.get("note"):
            measured += f" on {perf['rows']} rows of {perf.get('source') or 'feature store'}"
        threshold = (f"drop >= {perf['threshold']:.0%}, interval above 0"
                     if perf.get("threshold") is not None else "-")
        rows.append(["performance", measured, threshold, "yes" if perf["triggered"] else "no"])
    return rows


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def feature_table(features: list[dict[str, Any]]) -> str:
    """The per-feature drift rows (whatever numbers the check reports) as a markdown table."""
    headers = list(features[0])
    return markdown_table(headers, [["-" if f.get(h) is None else
                                     ("yes" if f[h] is True else "no" if f[h] is False else
                                      _number(f[h])) for h in headers] for f in features])


def metric_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Candidate vs production on the same holdout, one row per metric (empty when no
    candidate was evaluated)."""
    candidate, production = entry["metrics"]["candidate"], entry["metrics"]["production"]
    if not candidate:
        return []
    primary = entry.get("metric")
    rows = []
    for metric in METRICS:
        prod = production[metric] if production else None
        rel = relative_improvement(metric, candidate[metric], prod) if prod else None
        rows.append({"metric": metric, "primary": metric == primary,
                     "candidate": round(candidate[metric], 4),
                     "production": None if prod is None else round(prod, 4),
                     "relative_improvement": None if rel is None else round(rel, 4)})
    return rows


def model_document(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The run document narrowed to one model (renders with ``retrain.reporting.run``)."""
    triggers = document["triggers"]
    drift = triggers["drift"]["models"][name]
    volume = triggers["volume"]["models"][name]
    narrowed: dict[str, Any] = {
        "drift": {"detected": drift["detected"], "drifted_features": drift["drifted_features"],
                  "models": {name: drift}},
        "volume": {"met": volume["met"], "new_rows": volume["new_rows"],
                   "threshold": volume["threshold"], "models": {name: volume}},
    }
    if "performance" in triggers:
        perf = triggers["performance"]["models"][name]
        narrowed["performance"] = {"triggered": perf["triggered"], "models": {name: perf}}
    return {**document, "triggers": narrowed, "models": {name: document["models"][name]}}


def model_summary_markdown(document: dict[str, Any], name: str,
                           links: list[tuple[str, str]]) -> str:
    entry = document["models"][name]
    lines = [f"# {name}: {entry['decision'].upper()}", "",
             f"Run reason `{document['reason']}`{' (forced)' if document['forced'] else ''}, "
             f"started {document['started_at']}; this model was "
             + (f"retrained because: {entry['trigger']}." if entry["trigger"] else "not retrained."),
             "", "## Triggers", "",
             markdown_table(["trigger", "measured", "threshold", "fired"], trigger_rows(document, name)),
             ""]
    drift = document["triggers"]["drift"]["models"][name]
    if drift.get("features"):
        lines += ["### Drift per feature", "", feature_table(drift["features"]), ""]
    rows = metric_rows(entry)
    if rows:
        lines += ["## Evaluation: candidate vs production on the same holdout", "",
                  markdown_table(["metric", "candidate", "production", "relative improvement"],
                                 [[r["metric"] + (" **(primary)**" if r["primary"] else ""),
                                   _fmt(r["candidate"]), _fmt(r["production"]),
                                   _fmt(r["relative_improvement"], "{:+.2%}")] for r in rows]),
                  ""]
    lines += ["## Decision", "", markdown_table(DECISION_HEADERS, decision_rows(
        model_document(document, name))), ""]
    if entry["reason"]:
        lines += [f"Why: {entry['reason']}", ""]
    if links:
        lines += ["## Reports", ""] + [f"- [{text}]({url})" for text, url in links]
    return "\n".join(lines)




def drift_report_links(drift: dict[str, Any]) -> list[tuple[str, str]]:
    """Links to the drift check's report files (Evidently HTML, snapshot, our numbers)."""
    files = drift.get("report") or {}
    labels = {"html": "drift report (Evidently HTML)", "snapshot": "drift snapshot (Evidently JSON)",
              "result": "drift numbers (JSON)"}
    return [(text, Path(files[k]).as_uri()) for k, text in labels.items() if files.get(k)]


def drift_markdown(name: str, drift: dict[str, Any], volume: dict[str, Any]) -> str:
    document = {"triggers": {"drift": {"models": {name: drift}}, "volume": {"models": {name: volume}}}}
    lines = [f"# {name}: drift and volume", "",
             markdown_table(["trigger", "measured", "threshold", "fired"], trigger_rows(document, name)),
             ""]
    if drift.get("features"):
        lines += [feature_table(drift["features"]), ""]
    links = drift_report_links(drift)
    if links:
        lines += ["## Reports", ""] + [f"- [{text}]({url})" for text, url in links]
    return "\n".join(lines)
