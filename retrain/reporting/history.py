"""A model's history for people: its versions with their metrics and dates, its primary and
guardrail metrics at each evaluation (its own holdout, and production's on each later
candidate's holdout), the drift share and top drifted features of each run, its live metric
per day from the prediction log, and its promotions, rejections and rollbacks, as a table and
a self-contained HTML page (plotly)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select

from retrain.registry.tables import Feedback, PredictionLog
from retrain.reporting.tables import html_table, write_page
from retrain.workspace import Workspace

MARKED = {"promoted": "promoted", "rejected": "rejected", "rolled-back": "rolled back",
          "withdrawn": "withdrawn"}


def version_rows(ws: Workspace, model: str) -> list[dict[str, Any]]:
    """One row per version: id, status, created and promoted, and its primary metric on its
    own holdout (the ``retrain-history-<model>`` table)."""
    rows = []
    for version in ws.registry.versions(model):
        metric = ws.settings.promotion.metric_for(version.task)
        rows.append({"version": version.version_id, "status": version.status,
                     "kind": version.kind, "task": version.task,
                     "created": version.created_at.isoformat(timespec="seconds"),
                     "promoted": version.promoted_at.isoformat(timespec="seconds")
                     if version.promoted_at else None,
                     "metric": metric, "value": _round(version.metrics.get(metric)),
                     "rows": version.row_count,
                     "window": f"{version.train_start:%Y-%m-%d} .. {version.train_end:%Y-%m-%d}"})
    return rows


def evaluations(ws: Workspace, model: str) -> list[dict[str, Any]]:
    """Each evaluation: when, the candidate and production, and every metric of both on that
    evaluation's holdout (production's metrics there are its numbers on later data)."""
    out = []
    for event in ws.registry.history(model):
        if event.action != "evaluated" or not event.details:
            continue
        metrics = event.details.get("metrics") or {}
        out.append({"at": event.at, "candidate": event.version_id,
                    "production": event.details.get("production_version"),
                    "metric": event.details.get("metric"),
                    "candidate_metrics": metrics.get("candidate") or {},
                    "production_metrics": metrics.get("production") or {},
                    "guardrails": list((event.details.get("guardrails") or {}))})
    return out


def drift_checks(model: str, folder: Path) -> list[dict[str, Any]]:
    """The drift of each run that checked it, from the model's run documents in ``folder``
    (``retrain.pipeline.report_files.run_reports_dir``)."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            document = json.loads(path.read_text())
            drift = document["triggers"]["drift"]["models"][model]
            at = datetime.fromisoformat(document["started_at"].replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        features = sorted(drift.get("features") or [], key=lambda f: f.get("psi") or 0,
                          reverse=True)
        out.append({"at": at.replace(tzinfo=None), "share": drift.get("share", 0.0),
                    "detected": drift.get("detected", False),
                    "top": [f["feature"] for f in features if f.get("drifted")][:5]})
    return out


def live_per_day(ws: Workspace, model: str) -> list[dict[str, Any]]:
    """Per day, the served predictions of the model that got a label and how many were right
    (classification) or their mean squared error (regression)."""
    p, f = PredictionLog.__table__, Feedback.__table__
    query = (select(p.c.at, p.c.version_id, p.c.prediction, f.c.label)
             .select_from(p.join(f, and_(f.c.request_id == p.c.request_id,
                                         f.c.label.is_not(None))))
             .where(p.c.model_name == model).order_by(p.c.at))
    tasks = {v.version_id: v.task for v in ws.registry.versions(model)}
    days: dict[str, list[float]] = defaultdict(list)
    with ws.registry.reading() as s:
        for at, version_id, prediction, label in s.connection().execute(query):
            if tasks.get(version_id) == "regression":
                days[f"{at:%Y-%m-%d}"].append((prediction - label) ** 2)
            else:
                days[f"{at:%Y-%m-%d}"].append(1.0 if prediction == label else 0.0)
    regression = "regression" in tasks.values()
    return [{"day": day, "outcomes": len(values), "value": sum(values) / len(values),
             "metric": "squared_error" if regression else "accuracy"}
            for day, values in sorted(days.items())]


def marks(ws: Workspace, model: str) -> list[dict[str, Any]]:
    return [{"at": e.at, "action": MARKED[e.action], "version": e.version_id, "reason": e.reason}
            for e in ws.registry.history(model) if e.action in MARKED]


def write_history_html(ws: Workspace, model: str, path: Path, runs_folder: Path) -> Path:
    """The model's history page (see the module's docstring); ``runs_folder`` holds its run
    documents."""
    import plotly.graph_objects as go  # late: plotly is heavy, and only the page needs it
    from plotly.subplots import make_subplots
    ws.model_names([model])
    evaluated, drift, live, events = (evaluations(ws, model), drift_checks(model, runs_folder),
                                      live_per_day(ws, model), marks(ws, model))
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["metrics at each evaluation", "drift share per run",
                                        "live metric per day"])
    names = sorted({m for e in evaluated for m in [e["metric"], *e["guardrails"]] if m})
    for metric in names:
        fig.add_trace(go.Scatter(x=[e["at"] for e in evaluated],
                                 y=[e["candidate_metrics"].get(metric) for e in evaluated],
                                 mode="lines+markers", name=f"candidate {metric} (own holdout)",
                                 hovertext=[e["candidate"] for e in evaluated]), row=1, col=1)
        later = [e for e in evaluated if e["production"]]
        fig.add_trace(go.Scatter(x=[e["at"] for e in later],
                                 y=[e["production_metrics"].get(metric) for e in later],
                                 mode="markers", name=f"production {metric} (later data)",
                                 hovertext=[e["production"] for e in later]), row=1, col=1)
    fig.add_trace(go.Bar(x=[d["at"] for d in drift], y=[d["share"] for d in drift],
                         name="drifted share of features",
                         hovertext=[", ".join(d["top"]) or "none" for d in drift]), row=2, col=1)
    if live:
        fig.add_trace(go.Scatter(x=[d["day"] for d in live], y=[d["value"] for d in live],
                                 mode="lines+markers", name=f"live {live[0]['metric']}",
                                 hovertext=[f"{d['outcomes']} outcomes" for d in live]), row=3, col=1)
    for event in events:
        fig.add_vline(x=event["at"].timestamp() * 1000, line_dash="dot",
                      line_color={"promoted": "green", "rejected": "gray"}.get(event["action"], "red"))
    fig.add_trace(go.Scatter(x=[e["at"] for e in events], y=[0] * len(events), mode="markers+text",
                             text=[f"{e['action']} {e['version'] or ''}" for e in events],
                             textposition="top center", name="promotions, rejections, rollbacks",
                             hovertext=[e["reason"] for e in events]), row=2, col=1)
    fig.update_layout(title=f"{model}: history", height=1000)
    rows = version_rows(ws, model)
    headers = list(rows[0]) if rows else ["version"]
    return write_page(fig, path, "<h2>Versions</h2>" + html_table(
        headers, [[r.get(h) for h in headers] for r in rows]))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
