"""Evaluate each candidate against its model's production version on the same holdout.

Besides the metrics and the relative improvement, an evaluation carries a paired interval of
(challenger - champion) on the primary metric, the guardrail comparisons, and a smoke sample:
holdout rows with the candidate's predictions, re-scored after a promotion to prove that the
deployed artifact predicts what was evaluated.
"""

from __future__ import annotations

import logging

import numpy as np

from retrain.evaluation.results import Evaluation, Guardrail, Holdout, Interval, MetricPair
from retrain.evaluation.smoke import write_smoke_sample
from retrain.modeling import TrainedModel, encode_target
from retrain.registry import ModelVersion
from retrain.registry.rules import CURRENT
from retrain.reporting.evaluation import evaluation_line
from retrain.stats.metrics import compute_metrics, relative_improvement
from retrain.stats.paired import improvement_interval
from retrain.training.candidates import Candidate
from retrain.training.data import TrainingData, TrainingSets
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


def guardrail_checks(candidate: dict[str, float], production: dict[str, float],
                     guardrails: dict[str, float]) -> dict[str, Guardrail]:
    """For each guardrail metric: how much worse the candidate is (relative), and whether that
    stays within the tolerance."""
    out = {}
    for metric, tolerance in guardrails.items():
        worse = -relative_improvement(metric, candidate[metric], production[metric])
        out[metric] = Guardrail(candidate=candidate[metric], production=production[metric],
                                relative_worsening=worse, tolerance=tolerance,
                                ok=worse <= tolerance)
    return out


def aligned_scores(model: TrainedModel, rows, classes: list) -> np.ndarray:
    """``model``'s scores on ``rows`` with its class columns in the order of ``classes`` (a
    multiclass candidate may know a class its production version never saw: probability 0),
    so both are scored against the same labels."""
    scores = model.predict_scores(rows)
    if model.task != "multiclass" or list(model.classes) == list(classes):
        return scores
    out = np.zeros((scores.shape[0], len(classes)))
    position = {c: i for i, c in enumerate(model.classes)}
    for j, c in enumerate(classes):
        if c in position:
            out[:, j] = scores[:, position[c]]
    return out


def evaluate_candidate(ws: Workspace, candidate: ModelVersion, data: TrainingData | TrainingSets,
                       production=CURRENT) -> Evaluation:
    """Metrics of candidate and production on ``data.holdout``, and the relative improvement.

    Both models are loaded from their verified artifacts, so the numbers are those of the
    models as stored, not of objects in memory. ``production``: the version to compare with
    (default: the model's production version now).
    """
    ws, data = ws.for_model(candidate.model_name), data.of_model(candidate.model_name)
    policy = ws.settings.promotion
    target = ws.settings.data.target
    holdout = data.holdout
    model = ws.registry.load(candidate)
    metric = policy.metric_for(model.task)
    y, _ = encode_target(holdout.get_column(target), model.classes, model.task)
    candidate_proba = model.predict_scores(holdout)
    candidate_metrics = compute_metrics(y, candidate_proba, task=model.task)
    production = ws.registry.production_of(candidate.model_name, production)
    production_metrics = improvement = interval = difference = None
    guardrails: dict[str, Guardrail] = {}
    if production is not None:
        prod_model = ws.registry.load(production)
        production_proba = aligned_scores(prod_model, holdout, model.classes)
        production_metrics = compute_metrics(y, production_proba, task=model.task)
        improvement = relative_improvement(metric, candidate_metrics[metric],
                                           production_metrics[metric], policy.improvement_basis)
        difference = candidate_metrics[metric] - production_metrics[metric]
        interval = improvement_interval(
            y, production_proba, candidate_proba, metric, method=policy.interval_method,
            confidence=policy.confidence, samples=policy.bootstrap_samples)
        interval = Interval(**interval.as_dict())
        guardrails = guardrail_checks(candidate_metrics, production_metrics,
                                      policy.guardrails_for(model.task))
    evaluation = Evaluation(
        model=candidate.model_name, candidate_version=candidate.version_id,
        production_version=production.version_id if production else None, metric=metric,
        metrics=MetricPair(candidate=candidate_metrics, production=production_metrics),
        relative_improvement=improvement, improvement_basis=policy.improvement_basis,
        metric_difference=difference, interval=interval, guardrails=guardrails,
        holdout=Holdout(**data.holdout_window.as_dict(), rows=holdout.height),
        smoke_sample=write_smoke_sample(
            ws, candidate, list(model.preprocessing.schema.features), holdout, candidate_proba),
        features_added=[] if production is None else [
            f for f in candidate.feature_schema["features"]
            if f not in production.feature_schema["features"]])
    ws.registry.record(candidate.model_name, "evaluated", version_id=candidate.version_id,
                       reason=evaluation_line(evaluation), details=evaluation.to_dict())
    log.info("evaluated %s: %s", candidate.version_id, evaluation_line(evaluation))
    return evaluation


def evaluate_candidates(ws: Workspace, candidates: dict[str, Candidate | dict],
                        data: TrainingData | TrainingSets,
                        production: dict[str, ModelVersion | None] | None = None
                        ) -> dict[str, Evaluation]:
    """``evaluate_candidate`` for each model that has a candidate (``Candidate`` records or
    their dicts); ``production``: each model's production version as the run read it."""
    out = {}
    for name, candidate in candidates.items():
        candidate = Candidate.from_dict(candidate)
        if candidate.candidate_version is None:
            continue
        version = ws.registry.get_version(candidate.candidate_version)
        out[name] = evaluate_candidate(ws, version, data, (production or {}).get(name, CURRENT))
    return out
