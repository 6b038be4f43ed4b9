"""The retraining pipeline as Prefect flows: thin wrappers around ``retrain.pipeline`` steps.

    retraining-pipeline
      check-drift -> check-data-volume -> (check-performance)
      -> skip-retrain | load-new-data -> retrain-models -> evaluate-models -> deploy-models
      -> send-notifications

Each step is a subflow, so the dashboard shows the run nested under its parent.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from prefect import flow, get_run_logger, tags, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from retrain import pipeline as steps
from retrain.config import find_config_path
from retrain.evaluation import evaluation_markdown
from retrain.report import run_summary_markdown
from retrain.training import TrainingData, load_training_data
from retrain.workspace import Workspace


_SEED_SETTING_NAMES = ("DRIFT_THRESHOLD", "PSI_THRESHOLD", "MODEL_IMPROVEMENT_THRESHOLD",
                       "RETRAINING_SCHEDULE", "PERFORMANCE_ALERT_EMAIL")


def _workspace(config: str | None) -> Workspace:
    """The workspace of ``config`` (default: RETRAIN_CONFIG or ./retrain.toml).

    Opened once per run and reused by its subflows; a changed file or environment override
    (a long-lived process that serves many runs) opens it afresh.
    """
    path = find_config_path(config)
    overrides = tuple(sorted((k, v) for k, v in os.environ.items()
                             if (k.startswith("RETRAIN_") and "__" in k) or k in _SEED_SETTING_NAMES))
    return _open_workspace(str(path), path.stat().st_mtime_ns, overrides)


@lru_cache(maxsize=8)
def _open_workspace(config_path: str, mtime_ns: int = 0,
                    overrides: tuple[tuple[str, str], ...] = ()) -> Workspace:
    return Workspace.open(config_path)


def _resource(model: str) -> dict[str, str]:
    return {"prefect.resource.id": f"retrain.model.{model}", "prefect.resource.name": model}


def _emit(event: str, model: str, payload: dict[str, Any]) -> None:
    emit_event(event=event, resource=_resource(model), payload=payload)


@flow(name="check-drift", log_prints=True)
def check_drift(models: list[str] | None = None, config: str | None = None) -> dict[str, dict]:
    """KS and PSI (Evidently) between each production model's training data and newer rows."""
    ws = _workspace(config)
    results = steps.drift_step(ws, ws.model_names(models))
    for name, result in results.items():
        payload = {k: result[k] for k in ("detected", "drifted_features", "share")}
        payload["thresholds"] = result.get("thresholds")
        _emit("retrain.drift.checked", name, payload)
        if result["detected"]:
            _emit("retrain.drift.detected", name, payload)
    return results


@flow(name="check-data-volume")
def check_data_volume(models: list[str] | None = None, config: str | None = None) -> dict[str, dict]:
    """New labeled rows since each production model's training window vs the threshold."""
    ws = _workspace(config)
    results = steps.volume_step(ws, ws.model_names(models))
    for name, result in results.items():
        if result["met"]:
            _emit("retrain.volume.threshold-met", name, result)
    return results


@flow(name="check-performance")
def check_performance(models: list[str] | None = None, config: str | None = None) -> dict[str, dict]:
    """The production model's primary metric on newly labeled rows vs at promotion."""
    ws = _workspace(config)
    return steps.performance_step(ws, ws.model_names(models))


@task(name="skip-retrain")
def skip_retrain(triggers: dict, models: list[str], config: str | None = None) -> None:
    for name, reason in steps.skip_step(_workspace(config), models, triggers).items():
        _emit("retrain.pipeline.skipped", name, {"reason": reason,
                                                 "new_rows": triggers["volume"]["models"][name]["new_rows"],
                                                 "drift_share": triggers["drift"]["models"][name]["share"]})


@task(name="load-new-data")
def load_new_data(config: str | None = None) -> TrainingData:
    """The validated training window, split by time into train and holdout."""
    return load_training_data(_workspace(config))


@flow(name="retrain-models", validate_parameters=False)
def retrain_models(models: list[str], data: TrainingData, reason: str,
                   config: str | None = None) -> dict[str, dict]:
    """Train and register one candidate per model."""
    ws = _workspace(config)
    trained = steps.retrain_step(ws, models, data, reason)
    for name, result in trained.items():
        if result["candidate_version"]:
            _emit("retrain.model.registered", name, result)
    return trained


@flow(name="evaluate-models", validate_parameters=False)
def evaluate_models(trained: dict[str, dict], data: TrainingData,
                    config: str | None = None) -> dict[str, dict]:
    """Compare each candidate with production on the same holdout."""
    ws = _workspace(config)
    evaluations = steps.evaluate_step(ws, trained, data)
    if evaluations:
        create_markdown_artifact(key="model-evaluation", markdown=evaluation_markdown(evaluations),
                                 description="Candidate vs production on the same holdout")
    return evaluations


@flow(name="deploy-models")
def deploy_models(evaluations: dict[str, dict], config: str | None = None) -> dict[str, dict]:
    """Promote candidates that are enough better than production; reject the others."""
    ws = _workspace(config)
    decisions = steps.deploy_step(ws, evaluations)
    for name, d in decisions.items():
        event = "retrain.model.rejected" if d["decision"] == "rejected" else "retrain.model.promoted"
        _emit(event, name, {**d, "metrics": evaluations[name]["metrics"],
                            "metric": evaluations[name]["metric"]})
    return decisions


@flow(name="send-notifications")
def send_notifications(document: dict[str, Any]) -> str:
    """Publish the run summary (log and dashboard artifact)."""
    text = steps.notify_step(document)
    create_markdown_artifact(key="retraining-summary", markdown=run_summary_markdown(document),
                             description="What the retraining run found and decided")
    rows = [{"model": n, "decision": m["decision"], "candidate": m["candidate_version"],
             "production_before": m["production_version_before"],
             "relative_improvement": m["relative_improvement"]} for n, m in document["models"].items()]
    create_table_artifact(key="retraining-decisions", table=rows,
                          description="Decision per model")
    return text


@flow(name="retraining-pipeline", log_prints=True)
def retraining_pipeline(models: list[str] | None = None, force: bool = False,
                        reason: str = "manual", config: str | None = None,
                        check_performance_trigger: bool | None = None) -> dict[str, Any]:
    """Check triggers; retrain, evaluate and promote the models that need it."""
    logger = get_run_logger()
    if reason not in steps.REASONS:
        raise ValueError(f"reason must be one of {', '.join(steps.REASONS)}, got {reason!r}")
    ws = _workspace(config)
    names = ws.model_names(models)
    started = steps._now()
    with tags(*[f"model:{n}" for n in names], f"reason:{reason}"):
        before = {n: (v.version_id if (v := ws.registry.production_version(n)) else None)
                  for n in names}
        drift = check_drift(names, config)
        volume = check_data_volume(names, config)
        if check_performance_trigger is None:
            check_performance_trigger = ws.settings.triggers.check_performance
        performance = check_performance(names, config) if check_performance_trigger else None
        triggers = steps.summarize_triggers(drift, volume, performance)
        plan = steps.plan_retraining(ws, names, triggers, force)
        to_train = [n for n in names if plan[n]]
        trained = evaluations = decisions = data_summary = None
        if not to_train:
            logger.info("no trigger fired: skipping retraining")
            skip_retrain(triggers, names, config)
        else:
            data = load_new_data(config)
            data_summary = data.summary()
            trained = retrain_models(to_train, data, reason, config)
            evaluations = evaluate_models(trained, data, config)
            decisions = deploy_models(evaluations, config)
        document = steps.run_document(
            ws, reason=reason, forced=force, models=names, triggers=triggers, plan=plan,
            production_before=before, trained=trained, evaluations=evaluations,
            decisions=decisions, data_summary=data_summary, started_at=started)
        send_notifications(document)
    return document


if __name__ == "__main__":
    retraining_pipeline()
