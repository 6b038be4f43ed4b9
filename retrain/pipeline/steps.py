"""One retraining run, step by step, as library calls (the Prefect flows wrap these steps).

    checks (drift, volume, performance) -> skip | load data -> retrain -> evaluate -> deploy
    -> notify

``run_pipeline`` composes the steps without an orchestrator; ``AutomatedRetrainingPipeline``
keeps the seed's API on top of the same steps.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from retrain.errors import RegistryError, RetrainError
from retrain.evaluation import evaluate_candidate
from retrain.notify import NotificationService
from retrain.promotion import Approver, apply_decision
from retrain.registry import ModelVersion
from retrain.training import TrainingData, check_production_compatible, load_training_data, train_candidate
from retrain.triggers import check_drift, check_performance, check_volume
from retrain.workspace import Workspace

log = logging.getLogger("retrain")

REASONS = ("schedule", "drift", "volume", "performance", "manual")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Steps ------------------------------------------------------------------------------------

def drift_step(ws: Workspace, models: list[str]) -> dict[str, dict[str, Any]]:
    shared: dict = {}
    return {name: check_drift(ws, name, cache=shared).as_dict() for name in models}


def volume_step(ws: Workspace, models: list[str]) -> dict[str, dict[str, Any]]:
    return {name: check_volume(ws, name).as_dict() for name in models}


def performance_step(ws: Workspace, models: list[str]) -> dict[str, dict[str, Any]]:
    return {name: check_performance(ws, name).as_dict() for name in models}


def summarize_triggers(drift: dict, volume: dict, performance: dict | None) -> dict[str, Any]:
    """The ``triggers`` section of a run document, aggregated over models."""
    drifted = sorted({f for d in drift.values() for f in d["drifted_features"]})
    out: dict[str, Any] = {
        "drift": {"detected": any(d["detected"] for d in drift.values()),
                  "drifted_features": drifted, "models": drift},
        "volume": {"met": any(v["met"] for v in volume.values()),
                   "new_rows": max((v["new_rows"] for v in volume.values()), default=0),
                   "threshold": next(iter(volume.values()))["threshold"] if volume else None,
                   "models": volume},
    }
    if performance is not None:
        out["performance"] = {"triggered": any(p["triggered"] for p in performance.values()),
                              "models": performance}
    return out


def plan_retraining(ws: Workspace, models: list[str], triggers: dict[str, Any],
                    force: bool) -> dict[str, str]:
    """For each model, why it is retrained (``bootstrap``, ``drift, volume``, ``forced``) or
    the empty string when it is skipped."""
    plan = {}
    for name in models:
        reasons = []
        if ws.registry.production_version(name) is None:
            reasons.append("bootstrap")
        if triggers["drift"]["models"][name]["detected"]:
            reasons.append("drift")
        if triggers["volume"]["models"][name]["met"]:
            reasons.append("volume")
        if "performance" in triggers and triggers["performance"]["models"][name]["triggered"]:
            reasons.append("performance")
        if not reasons and force:
            reasons.append("forced")
        plan[name] = ", ".join(reasons)
    return plan


def skip_reason(name: str, triggers: dict[str, Any]) -> str:
    drift = triggers["drift"]["models"][name]
    volume = triggers["volume"]["models"][name]
    rule = drift.get("decision") or "share"
    drift_note = drift["note"] or (
        f"drift share {drift['share']:.2f}" if rule == "share"
        else f"{rule}: {len(drift['drifted_features'])} of {len(drift.get('features') or [])} "
             "features drifted")
    parts = [f"no drift ({drift_note})",
             f"{volume['new_rows']} new rows < {volume['threshold']}"]
    if "performance" in triggers:
        parts.append("no performance drop")
    return "no trigger fired: " + ", ".join(parts)


def skip_step(ws: Workspace, models: list[str], triggers: dict[str, Any]) -> dict[str, str]:
    """Record in the audit log why each model was not retrained; return the reasons."""
    reasons = {name: skip_reason(name, triggers) for name in models}
    for name, reason in reasons.items():
        ws.registry.record(name, "skipped", reason=reason)
    return reasons


def retrain_step(ws: Workspace, models: list[str], data: TrainingData,
                 reason: str) -> dict[str, dict[str, Any]]:
    """Train and register one candidate per model; a failure of one model does not stop the rest."""
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        try:
            check_production_compatible(ws, name)
            version = train_candidate(ws, name, data, reason=reason)
            out[name] = {"candidate_version": version.version_id, "metrics": version.metrics,
                         "error": None}
        except RetrainError as exc:
            log.error("training %s failed: %s", name, exc)
            out[name] = {"candidate_version": None, "metrics": None, "error": str(exc)}
    return out


def evaluate_step(ws: Workspace, candidates: dict[str, dict[str, Any]],
                  data: TrainingData) -> dict[str, dict[str, Any]]:
    evaluations = {}
    for name, trained in candidates.items():
        if trained["candidate_version"] is None:
            continue
        version: ModelVersion = ws.registry.get_version(trained["candidate_version"])
        evaluations[name] = evaluate_candidate(ws, version, data)
    return evaluations


def deploy_step(ws: Workspace, evaluations: dict[str, dict[str, Any]],
                min_relative_improvement: float | None = None,
                approver: Approver | None = None,
                notifier: NotificationService | None = None) -> dict[str, dict[str, Any]]:
    """Decide each candidate: approval if required, notice, switch, smoke check, notice."""
    threshold = (ws.settings.promotion.min_relative_improvement
                 if min_relative_improvement is None else min_relative_improvement)
    notifier = notifier or NotificationService(workspace=ws)
    decisions = {}
    for name, ev in evaluations.items():
        try:
            decisions[name] = apply_decision(ws, ev, threshold, notifier=notifier, approver=approver)
        except RegistryError as exc:  # e.g. production changed since the evaluation
            log.error("decision for %s failed: %s", ev["candidate_version"], exc)
            decisions[name] = {"model": name, "version_id": ev["candidate_version"],
                               "decision": "failed", "reason": str(exc),
                               "production_version_before": ev.get("production_version"),
                               "relative_improvement": ev["relative_improvement"]}
    return decisions


def run_document(ws: Workspace, *, reason: str, forced: bool, models: list[str],
                 triggers: dict[str, Any], plan: dict[str, str],
                 production_before: dict[str, str | None],
                 trained: dict[str, dict[str, Any]] | None = None,
                 evaluations: dict[str, dict[str, Any]] | None = None,
                 decisions: dict[str, dict[str, Any]] | None = None,
                 data_summary: dict[str, Any] | None = None,
                 started_at: str | None = None) -> dict[str, Any]:
    """The document ``retrain run --json`` prints and the dashboard summary renders."""
    trained, evaluations, decisions = trained or {}, evaluations or {}, decisions or {}
    per_model: dict[str, Any] = {}
    for name in models:
        after = ws.registry.production_version(name)
        entry: dict[str, Any] = {
            "production_version_before": production_before.get(name),
            "production_version_after": after.version_id if after else None,
            "candidate_version": None, "decision": "skipped", "reason": "",
            "trigger": plan.get(name) or None,
            "metrics": {"candidate": None, "production": None}, "relative_improvement": None,
        }
        if not plan.get(name):
            entry["reason"] = skip_reason(name, triggers)
        elif name in trained and trained[name]["error"]:
            entry.update(decision="failed", reason=trained[name]["error"])
        if name in evaluations:
            ev = evaluations[name]
            entry.update(candidate_version=ev["candidate_version"], metrics=ev["metrics"],
                         relative_improvement=ev["relative_improvement"], metric=ev["metric"])
        if name in decisions:
            entry.update(decision=decisions[name]["decision"], reason=decisions[name]["reason"])
        per_model[name] = entry
    return {
        "reason": reason, "forced": forced, "started_at": started_at, "finished_at": _now(),
        "triggers": triggers, "retrained": bool(trained), "data": data_summary,
        "models": per_model,
        "success": not any(m["decision"] == "failed" for m in per_model.values()),
    }


def flush_notifications_step(ws: Workspace, notifier: NotificationService | None = None
                             ) -> dict[str, int]:
    """Deliver notifications still pending from earlier runs (a mail server that was down)."""
    counts = (notifier or NotificationService(workspace=ws)).flush()
    if counts["sent"] or counts["retry"] or counts["failed"]:
        log.info("outbox: %d delivered, %d to retry, %d failed", counts["sent"], counts["retry"],
                 counts["failed"])
    return counts


def notify_step(document: dict[str, Any], ws: Workspace | None = None,
                notifier: NotificationService | None = None) -> str:
    """Send the drift alert (when drift was found) and the retraining summary; return the
    summary text. Without a workspace the summary is only logged."""
    from retrain.reporting.run import run_summary_text
    text = run_summary_text(document)
    log.info("retraining summary\n%s", text)
    if ws is None and notifier is None:
        return text
    notifier = notifier or NotificationService(workspace=ws)
    triggers = document["triggers"]
    if triggers["drift"]["detected"]:
        notifier.send_drift_alert(triggers["drift"]["models"])
    notifier.send_retraining_summary(triggers["drift"]["detected"], triggers["volume"]["met"],
                                     {"models": document["models"]}, summary_text=text)
    return text


def run_pipeline(ws: Workspace, models: list[str] | None = None, *, force: bool = False,
                 reason: str = "manual", check_performance: bool | None = None) -> dict[str, Any]:
    """One whole run without an orchestrator; returns the run document."""
    started = _now()
    names = ws.model_names(models)
    if check_performance is None:
        check_performance = ws.settings.triggers.check_performance
    production_before = {n: (v.version_id if (v := ws.registry.production_version(n)) else None)
                         for n in names}
    flush_notifications_step(ws)
    log.info("[1/6] checking drift for %s", ", ".join(names))
    drift = drift_step(ws, names)
    log.info("[2/6] checking data volume")
    volume = volume_step(ws, names)
    performance = performance_step(ws, names) if check_performance else None
    triggers = summarize_triggers(drift, volume, performance)
    plan = plan_retraining(ws, names, triggers, force)
    to_train = [n for n in names if plan[n]]
    trained = evaluations = decisions = None
    data_summary = None
    if not to_train:
        log.info("[3/6] skipping retraining: no trigger fired")
        skip_step(ws, names, triggers)
    else:
        log.info("[3/6] loading the training window")
        data = load_training_data(ws)
        data_summary = data.summary()
        log.info("[4/6] retraining %s", ", ".join(f"{n} ({plan[n]})" for n in to_train))
        trained = retrain_step(ws, to_train, data, reason)
        log.info("[5/6] evaluating candidates against production")
        evaluations = evaluate_step(ws, trained, data)
        log.info("[6/6] deciding promotions")
        decisions = deploy_step(ws, evaluations)
    document = run_document(ws, reason=reason, forced=force, models=names, triggers=triggers,
                            plan=plan, production_before=production_before, trained=trained,
                            evaluations=evaluations, decisions=decisions,
                            data_summary=data_summary, started_at=started)
    notify_step(document, ws)
    return document


