"""Evaluate each candidate against its model's production version on the same holdout."""

from __future__ import annotations

import logging
from typing import Any

from retrain.metrics import METRICS, compute_metrics, relative_improvement
from retrain.modeling import encode_target
from retrain.registry import ModelVersion
from retrain.training import TrainingData
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def evaluate_candidate(ws: Workspace, candidate: ModelVersion, data: TrainingData) -> dict[str, Any]:
    """Metrics of candidate and production on ``data.holdout``, and the relative improvement.

    Both models are loaded from their verified artifacts, so the numbers are those of the
    models as stored, not of objects in memory.
    """
    metric = ws.settings.promotion.metric
    target = ws.settings.data.target
    holdout = data.holdout
    model = ws.registry.load(candidate)
    y, _ = encode_target(holdout.get_column(target), model.classes)
    candidate_metrics = compute_metrics(y, model.predict_proba(holdout))
    production = ws.registry.production_version(candidate.model_name)
    production_metrics = None
    improvement = None
    if production is not None:
        prod_model = ws.registry.load(production)
        y_prod, _ = encode_target(holdout.get_column(target), prod_model.classes)
        production_metrics = compute_metrics(y_prod, prod_model.predict_proba(holdout))
        improvement = relative_improvement(metric, candidate_metrics[metric], production_metrics[metric])
    evaluation = {
        "model": candidate.model_name,
        "candidate_version": candidate.version_id,
        "production_version": production.version_id if production else None,
        "metric": metric,
        "metrics": {"candidate": candidate_metrics, "production": production_metrics},
        "relative_improvement": improvement,
        "holdout": {**data.holdout_window.as_dict(), "rows": holdout.height},
    }
    ws.registry.record(candidate.model_name, "evaluated", version_id=candidate.version_id,
                       reason=(f"{metric} {candidate_metrics[metric]:.4f} vs production "
                               f"{production_metrics[metric]:.4f} ({improvement:+.1%})"
                               if production_metrics else f"{metric} {candidate_metrics[metric]:.4f}; "
                               "no production version to compare with"),
                       details=evaluation)
    log.info("evaluated %s: %s", candidate.version_id, evaluation_line(evaluation))
    return evaluation


def evaluation_line(evaluation: dict[str, Any]) -> str:
    metric = evaluation["metric"]
    cand = evaluation["metrics"]["candidate"][metric]
    prod = evaluation["metrics"]["production"]
    if prod is None:
        return f"{metric} {cand:.4f} (no production version)"
    return (f"{metric} {cand:.4f} vs production {prod[metric]:.4f} "
            f"({evaluation['relative_improvement']:+.1%})")


def evaluation_markdown(evaluations: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per model and metric, candidate vs production."""
    lines = ["| model | metric | candidate | production | relative improvement |",
             "|---|---|---:|---:|---:|"]
    for name, ev in evaluations.items():
        cand, prod = ev["metrics"]["candidate"], ev["metrics"]["production"]
        for metric in METRICS:
            rel = relative_improvement(metric, cand[metric], prod[metric]) if prod else None
            star = " **(primary)**" if metric == ev["metric"] else ""
            lines.append(f"| {name} | {metric}{star} | {cand[metric]:.4f} | "
                         f"{'-' if prod is None else f'{prod[metric]:.4f}'} | "
                         f"{'-' if rel is None else f'{rel:+.2%}'} |")
    return "\n".join(lines)
