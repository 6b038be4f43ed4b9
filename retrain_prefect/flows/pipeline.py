"""The retraining pipeline as Prefect flows: thin wrappers around ``retrain.pipeline`` steps.

    retraining-pipeline
      (flush-notifications) -> check-drift -> check-data-volume -> (check-performance)
      -> skip-retrain | load-new-data -> retrain-models -> evaluate-models -> deploy-models
      -> send-notifications

Each step is a subflow, so the dashboard shows the run nested under its parent. The parent
run is named after its models and reason and tagged ``model:<name>`` and ``reason:<reason>``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, tags, task
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as current_run

from retrain_prefect import dashboard
from retrain_prefect.approval import prefect_approver
from retrain_prefect.common import (emit, notifier, run_tags, step_settings, tag_current_run, untagged,
                          workspace)
from retrain.pipeline import steps
from retrain.drift.check import drift_event
from retrain.training import TrainingData, load_training_data


@flow(name="check-drift", log_prints=True)
def check_drift(models: list[str] | None = None, config: str | None = None,
                announce: bool = True) -> dict[str, dict]:
    """Drift of the rows newer than each production model's training window against its
    reference (``[drift]`` methods and decision rule).

    Emits ``retrain.drift.detected`` for each drifted model when ``announce`` (automations
    turn it into a retraining run), else ``retrain.drift.checked``; the payload has the
    numbers either way. The pipeline passes ``announce=False``: it acts on the drift itself,
    and a ``detected`` event would start a second run.
    """
    ws = workspace(config)
    results = steps.drift_step(ws, ws.model_names(models))
    for name, result in results.items():
        event, payload = drift_event(result)
        emit(event if announce else "retrain.drift.checked", name, payload)
    return results


@flow(name="check-data-volume")
def check_data_volume(models: list[str] | None = None, config: str | None = None,
                      announce: bool = True) -> dict[str, dict]:
    """New labeled rows since each production model's training window vs the threshold;
    ``retrain.volume.threshold-met`` when reached and ``announce`` (as for drift)."""
    ws = workspace(config)
    results = steps.volume_step(ws, ws.model_names(models))
    for name, result in results.items():
        if announce and result["met"]:
            emit("retrain.volume.threshold-met", name, result)
    return results


@flow(name="check-performance")
def check_performance(models: list[str] | None = None, config: str | None = None) -> dict[str, dict]:
    """The production model's primary metric on newly labeled rows vs at promotion."""
    ws = workspace(config)
    return steps.performance_step(ws, ws.model_names(models))


@task(name="skip-retrain")
def skip_retrain(triggers: dict, models: list[str], config: str | None = None) -> None:
    """Record why each model is not retrained; ``retrain.pipeline.skipped`` with the numbers."""
    for name, reason in steps.skip_step(workspace(config), models, triggers).items():
        drift = triggers["drift"]["models"][name]
        volume = triggers["volume"]["models"][name]
        emit("retrain.pipeline.skipped", name, {
            "model": name, "reason": reason,
            "new_rows": volume["new_rows"], "volume_threshold": volume["threshold"],
            "drift_detected": drift["detected"], "drift_share": drift["share"],
            "drift_share_threshold": (drift.get("thresholds") or {}).get("drift_share"),
            "drifted_features": drift["drifted_features"]})


@task(name="flush-notifications", retries=2, retry_delay_seconds=5)
def flush_notifications(config: str | None = None) -> dict[str, int]:
    """Deliver notifications still pending from earlier runs (a mail server that was down)."""
    ws = workspace(config)
    return steps.flush_notifications_step(ws, notifier(ws))


@task(name="load-new-data")
def load_new_data(config: str | None = None) -> TrainingData:
    """The validated training window, split by time into train and holdout."""
    return load_training_data(workspace(config))


@flow(name="retrain-models", validate_parameters=False)
def retrain_models(models: list[str], data: TrainingData, reason: str,
                   config: str | None = None) -> dict[str, dict]:
    """Train and register one candidate per model."""
    ws = workspace(config)
    trained = steps.retrain_step(ws, models, data, reason)
    for name, result in trained.items():
        if result["candidate_version"]:
            emit("retrain.model.registered", name, {**result, "model": name, "reason": reason,
                                                    "data": data.summary()})
    return trained


@flow(name="evaluate-models", validate_parameters=False)
def evaluate_models(trained: dict[str, dict], data: TrainingData,
                    config: str | None = None) -> dict[str, dict]:
    """Compare each candidate with production on the same holdout."""
    return steps.evaluate_step(workspace(config), trained, data)


DECISION_EVENTS = {"promoted": "retrain.model.promoted", "bootstrapped": "retrain.model.promoted",
                   "rejected": "retrain.model.rejected",
                   "rolled-back": "retrain.model.rolled-back"}  # the smoke check after the switch failed


@flow(name="deploy-models")
def deploy_models(evaluations: dict[str, dict], config: str | None = None) -> dict[str, dict]:
    """Promote candidates that are enough better than production; reject the others. Where
    approval is required, the run pauses until a person answers (``retrain_prefect.approval``)."""
    ws = workspace(config)
    approver = prefect_approver(ws.settings.promotion.approval_timeout_hours)
    decisions = steps.deploy_step(ws, evaluations, approver=approver, notifier=notifier(ws))
    threshold = ws.settings.promotion.min_relative_improvement
    for name, decision in decisions.items():
        # failed or awaiting-approval: production is as it was; the run document says why.
        event = DECISION_EVENTS.get(decision["decision"])
        if event:
            payload = {**decision, "metric": evaluations[name]["metric"],
                       "metrics": evaluations[name]["metrics"], "threshold": threshold}
            if decision["decision"] == "rolled-back":  # the same keys as rollback-model's event
                payload.update(production_version=decision["production_version_before"],
                               rolled_back_from=decision["version_id"])
            emit(event, name, payload)
    return decisions


@flow(name="send-notifications")
def send_notifications(document: dict[str, Any], config: str | None = None,
                       pipeline_run_id: UUID | None = None) -> str:
    """The drift alert and the run summary (mail, webhook, log), the report files and the
    dashboard artifacts."""
    ws = workspace(config)
    text = steps.notify_step(document, ws, notifier(ws))
    dashboard.publish_run(ws, document, pipeline_run_id)
    return text


def _run_name() -> str:
    parameters = current_run.parameters
    models = parameters.get("models") or ["all models"]
    return f"{', '.join(models)} ({parameters.get('reason', 'manual')})"


@flow(name="retraining-pipeline", log_prints=True, flow_run_name=_run_name)
def retraining_pipeline(models: list[str] | None = None, force: bool = False,
                        reason: str = "manual", config: str | None = None,
                        check_performance_trigger: bool | None = None) -> dict[str, Any]:
    """Check triggers; retrain, evaluate and promote the models that need it."""
    logger = get_run_logger()
    if reason not in steps.REASONS:
        raise ValueError(f"reason must be one of {', '.join(steps.REASONS)}, got {reason!r}")
    ws = workspace(config)
    names = ws.model_names(models)
    started = steps._now()
    tag_current_run(run_tags(names, reason))
    # Subflows carry the run's tags; tasks do not (see retrain_prefect.common.untagged).
    with tags(*run_tags(names, reason)), step_settings():
        before = {n: (v.version_id if (v := ws.registry.production_version(n)) else None)
                  for n in names}
        with untagged():
            flush_notifications(config)
        drift = check_drift(names, config, announce=False)
        volume = check_data_volume(names, config, announce=False)
        if check_performance_trigger is None:
            check_performance_trigger = ws.settings.triggers.check_performance
        performance = check_performance(names, config) if check_performance_trigger else None
        triggers = steps.summarize_triggers(drift, volume, performance)
        plan = steps.plan_retraining(ws, names, triggers, force)
        to_train = [n for n in names if plan[n]]
        trained = evaluations = decisions = data_summary = None
        if not to_train:
            logger.info("no trigger fired: skipping retraining")
            with untagged():
                skip_retrain(triggers, names, config)
        else:
            with untagged():
                data = load_new_data(config)
            data_summary = data.summary()
            trained = retrain_models(to_train, data, reason, config)
            evaluations = evaluate_models(trained, data, config)
            decisions = deploy_models(evaluations, config)
        document = steps.run_document(
            ws, reason=reason, forced=force, models=names, triggers=triggers, plan=plan,
            production_before=before, trained=trained, evaluations=evaluations,
            decisions=decisions, data_summary=data_summary, started_at=started)
        context = FlowRunContext.get()
        send_notifications(document, config, context.flow_run.id if context else None)
    return document


if __name__ == "__main__":
    retraining_pipeline()
