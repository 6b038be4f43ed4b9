"""Evaluate each candidate against its model's production version on the same holdout.

Besides the metrics and the relative improvement, an evaluation carries a paired interval of
(challenger - champion) on the primary metric, the guardrail comparisons, and a smoke sample:
holdout rows with the candidate's predictions, re-scored after a promotion to prove that the
deployed artifact predicts what was evaluated.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

import numpy as np
import polars as pl

from retrain.artifacts import atomic_write_bytes
from retrain.metrics import METRICS, compute_metrics, relative_improvement
from retrain.modeling import encode_target
from retrain.registry import ModelVersion
from retrain.significance import improvement_interval
from retrain.training import TrainingData
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def guardrail_checks(candidate: dict[str, float], production: dict[str, float],
                     guardrails: dict[str, float]) -> dict[str, dict[str, Any]]:
    """For each guardrail metric: how much worse the candidate is (relative), and whether that
    stays within the tolerance."""
    out = {}
    for metric, tolerance in guardrails.items():
        worse = -relative_improvement(metric, candidate[metric], production[metric])
        out[metric] = {"candidate": candidate[metric], "production": production[metric],
                       "relative_worsening": worse, "tolerance": tolerance, "ok": worse <= tolerance}
    return out


def _write_smoke_sample(ws: Workspace, candidate: ModelVersion, features: list[str],
                        holdout: pl.DataFrame, proba: np.ndarray) -> dict[str, Any]:
    n = min(ws.settings.promotion.smoke_rows, holdout.height)
    idx = np.random.default_rng(0).choice(holdout.height, size=n, replace=False)
    idx.sort()
    sample = holdout[idx].select(features).with_columns(pl.Series("expected_probability", proba[idx]))
    buf = io.BytesIO()
    sample.write_parquet(buf)
    data = buf.getvalue()
    path = ws.registry.artifact_file(candidate).with_suffix(".smoke.parquet")
    atomic_write_bytes(path, data)
    return {"path": path.relative_to(ws.registry.artifacts_dir).as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(), "rows": n}


def evaluate_candidate(ws: Workspace, candidate: ModelVersion, data: TrainingData) -> dict[str, Any]:
    """Metrics of candidate and production on ``data.holdout``, and the relative improvement.

    Both models are loaded from their verified artifacts, so the numbers are those of the
    models as stored, not of objects in memory.
    """
    policy = ws.settings.promotion
    metric = policy.metric
    target = ws.settings.data.target
    holdout = data.holdout
    model = ws.registry.load(candidate)
    y, _ = encode_target(holdout.get_column(target), model.classes)
    candidate_proba = model.predict_proba(holdout)
    candidate_metrics = compute_metrics(y, candidate_proba)
    production = ws.registry.production_version(candidate.model_name)
    production_metrics = improvement = interval = None
    guardrails: dict[str, Any] = {}
    if production is not None:
        prod_model = ws.registry.load(production)
        y_prod, _ = encode_target(holdout.get_column(target), prod_model.classes)
        production_proba = prod_model.predict_proba(holdout)
        production_metrics = compute_metrics(y_prod, production_proba)
        improvement = relative_improvement(metric, candidate_metrics[metric], production_metrics[metric])
        interval = improvement_interval(
            y, production_proba, candidate_proba, metric, method=policy.interval_method,
            confidence=policy.confidence, samples=policy.bootstrap_samples).as_dict()
        guardrails = guardrail_checks(candidate_metrics, production_metrics, policy.guardrails)
    evaluation = {
        "model": candidate.model_name,
        "candidate_version": candidate.version_id,
        "production_version": production.version_id if production else None,
        "metric": metric,
        "metrics": {"candidate": candidate_metrics, "production": production_metrics},
        "relative_improvement": improvement,
        "interval": interval,
        "guardrails": guardrails,
        "holdout": {**data.holdout_window.as_dict(), "rows": holdout.height},
        "smoke_sample": _write_smoke_sample(
            ws, candidate, list(model.preprocessing.schema.features), holdout, candidate_proba),
    }
    ws.registry.record(candidate.model_name, "evaluated", version_id=candidate.version_id,
                       reason=evaluation_line(evaluation), details=evaluation)
    log.info("evaluated %s: %s", candidate.version_id, evaluation_line(evaluation))
    return evaluation


def interval_text(interval: dict[str, Any] | None) -> str:
    if not interval:
        return "-"
    return (f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}] "
            f"({interval['confidence']:.0%} {interval['method']})")


def evaluation_line(evaluation: dict[str, Any]) -> str:
    metric = evaluation["metric"]
    cand = evaluation["metrics"]["candidate"][metric]
    prod = evaluation["metrics"]["production"]
    if prod is None:
        return f"{metric} {cand:.4f} (no production version)"
    return (f"{metric} {cand:.4f} vs production {prod[metric]:.4f} "
            f"({evaluation['relative_improvement']:+.1%}; difference "
            f"{interval_text(evaluation.get('interval'))})")


def evaluation_markdown(evaluations: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per model and metric, candidate vs production."""
    lines = ["| model | metric | candidate | production | relative improvement |",
             "|---|---|---:|---:|---:|"]
    for name, ev in evaluations.items():
        cand, prod = ev["metrics"]["candidate"], ev["metrics"]["production"]
        for metric in METRICS:
            rel = relative_improvement(metric, cand[metric], prod[metric]) if prod else None
            star = " **(primary)**" if metric == ev["metric"] else ""
            guard = " (guardrail)" if metric in (ev.get("guardrails") or {}) else ""
            lines.append(f"| {name} | {metric}{star}{guard} | {cand[metric]:.4f} | "
                         f"{'-' if prod is None else f'{prod[metric]:.4f}'} | "
                         f"{'-' if rel is None else f'{rel:+.2%}'} |")
    intervals = [f"- **{n}**: challenger better than champion on {ev['metric']} by "
                 f"{ev['interval']['difference']:+.4f}, interval {interval_text(ev['interval'])}"
                 for n, ev in evaluations.items() if ev.get("interval")]
    if intervals:
        lines += ["", *intervals]
    return "\n".join(lines)
