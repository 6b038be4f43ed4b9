"""The events retrain's flows emit, made from the library's typed results.

Every event's resource is ``retrain.model.<name>`` (automations read the model from it); the
payload carries the numbers behind what happened. The names and payload keys are a stable
interface (README, "Events").
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from retrain.drift.check import DriftCheck
from retrain.evaluation.results import Evaluation
from retrain.pipeline.context import RunContext
from retrain.promotion.results import Decision
from retrain.training.candidates import Candidate
from retrain.training.data import TrainingSets
from retrain.triggers.performance import PerformanceCheck
from retrain.triggers.report import TriggerReport
from retrain.triggers.volume import VolumeCheck

DECISION_EVENTS = {"promoted": "retrain.model.promoted", "bootstrapped": "retrain.model.promoted",
                   "rejected": "retrain.model.rejected",
                   "rolled-back": "retrain.model.rolled-back"}  # the smoke check after the switch failed


def model_resource(model: str) -> dict[str, str]:
    """The event resource of a model: automations read the model name from it."""
    return {"prefect.resource.id": f"retrain.model.{model}", "prefect.resource.name": model}


def emit(event: str, model: str, payload: dict[str, Any]) -> None:
    emit_event(event=event, resource=model_resource(model), payload=payload)


def drift_event(check: DriftCheck) -> tuple[str, dict[str, Any]]:
    """``retrain.drift.detected`` when drift was found, else ``retrain.drift.checked``, with
    the numbers either way (per-feature tables left out: they are in the report)."""
    summary = check.summary()
    result = summary.to_dict()
    name = "retrain.drift.detected" if summary.detected else "retrain.drift.checked"
    thresholds = result["thresholds"] or {}
    payload = {
        "model": summary.model, "detected": summary.detected,
        "drifted_features": result["drifted_features"], "drifted": result["drifted"] or [],
        "share": summary.share, "methods": result["methods"],
        "decision": {"rule": summary.decision, **thresholds},
        "thresholds": thresholds, "triggered_by": result["triggered_by"],
        "reference_rows": summary.reference_rows, "current_rows": summary.current_rows,
        "note": summary.note,
        "label_drift": {k: v for k, v in (result["label_drift"] or {}).items() if k != "table"},
        "prediction_drift": {k: v for k, v in (result["prediction_drift"] or {}).items()
                             if k != "table"},
        "report_html": summary.report.html if summary.report else None,
        # [drift] segments: each segment value that drifted, with its features.
        "segments": [{"segment": seg.segment, "value": row.value,
                      "drifted_features": row.drifted_features}
                     for seg in summary.segments for row in seg.segments if row.detected],
    }
    return name, payload


# What each pipeline step publishes from inside its own run (retrain_prefect.runner) --------

def checked_drift(context: RunContext, checks: dict[str, DriftCheck]) -> None:
    """Every model's drift check; ``detected`` only when the run announces its triggers (the
    pipeline acts on its own drift, and a ``detected`` event would start a second run)."""
    for name, check in checks.items():
        event, payload = drift_event(check)
        emit(event if context.announce else "retrain.drift.checked", name, payload)


def checked_performance(context: RunContext, checks: dict[str, PerformanceCheck]) -> None:
    """``retrain.performance.degraded`` for a model whose performance trigger fired, else
    ``retrain.performance.checked``; the payload says which part of the rows was realised
    and which estimated without labels (``labeled_rows``, ``estimated_rows``)."""
    for name, check in checks.items():
        emit("retrain.performance.degraded" if check.triggered else "retrain.performance.checked",
             name, check.to_dict())


def checked_volume(context: RunContext, checks: dict[str, VolumeCheck]) -> None:
    if context.announce:
        for name, check in checks.items():
            if check.met:
                emit("retrain.volume.threshold-met", name, check.to_dict())


def skipped(context: RunContext, reasons: dict[str, str], triggers: TriggerReport) -> None:
    for name, reason in reasons.items():
        drift, volume = triggers.drift[name], triggers.volume[name]
        result = drift.result
        emit("retrain.pipeline.skipped", name, {
            "model": name, "reason": reason,
            "new_rows": volume.new_rows, "volume_threshold": volume.threshold,
            "drift_detected": drift.detected, "drift_share": drift.share,
            "drift_share_threshold": None if result is None else result.thresholds.get("drift_share"),
            "drifted_features": drift.drifted_features})


def registered(context: RunContext, candidates: dict[str, Candidate], plan,
               data: TrainingSets) -> None:
    for name, candidate in candidates.items():
        if candidate.candidate_version:
            emit("retrain.model.registered", name, {
                **candidate.to_dict(), "model": name, "reason": context.reason,
                "dataset": context.workspace.settings.dataset_of(name),
                "data": data.of_model(name).summary()})


def decided(context: RunContext, decisions: dict[str, Decision],
            evaluations: dict[str, Evaluation]) -> None:
    """Promoted, rejected, rolled back (failed or awaiting: production is as it was, and the
    run document says why)."""
    threshold = context.workspace.settings.promotion.min_relative_improvement
    for name, decision in decisions.items():
        event = DECISION_EVENTS.get(decision.decision)
        if event is None:
            continue
        evaluation = evaluations[name]
        payload = {**decision.to_dict(), "metric": evaluation.metric,
                   "metrics": evaluation.metrics.to_dict(), "threshold": threshold,
                   "improvement_basis": evaluation.improvement_basis,
                   "metric_difference": evaluation.metric_difference}
        if decision.decision == "rolled-back":  # the same keys as rollback-model's event
            payload.update(production_version=decision.production_version_before,
                           rolled_back_from=decision.version_id)
        emit(event, name, payload)
