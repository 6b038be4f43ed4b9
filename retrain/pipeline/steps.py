"""The steps of a retraining run.

Each step takes the run's context and the typed values earlier steps returned, and returns a
typed value; ``retrain.pipeline.run`` puts them in order and a runner runs them (plain calls,
or Prefect subflows named as the steps)."""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from retrain.drift.check import DriftCheck
from retrain.drift.check import check_drift as check_model_drift
from retrain.drift.report_files import render_pending
from retrain.errors import ArtifactIntegrityError
from retrain.evaluation.evaluate import evaluate_candidates
from retrain.evaluation.results import Evaluation
from retrain.pipeline.context import RunContext
from retrain.pipeline.document import RunDocument
from retrain.pipeline.plan import RetrainPlan
from retrain.pipeline.report_files import RunReports, write_run_reports
from retrain.pipeline.runner import step
from retrain.promotion.decisions import decide_all
from retrain.promotion.results import Decision
from retrain.promotion.switch import finish_interrupted
from retrain.reporting.model import drift_report_url
from retrain.reporting.run import run_summary_text
from retrain.training.candidates import Candidate, train_candidates
from retrain.training.data import TrainingSets, load_training_sets
from retrain.triggers.performance import PerformanceCheck
from retrain.triggers.performance import check_performance as check_model_performance
from retrain.triggers.report import TriggerReport
from retrain.triggers.volume import VolumeCheck, check_volume

log = logging.getLogger("retrain")
T = TypeVar("T")


@step("flush-notifications", kind="task", retries=2, retry_delay_seconds=5)
def flush_notifications(context: RunContext) -> dict[str, int]:
    """Finish what earlier processes left: production switches half done, candidates never
    decided; then deliver the notifications still pending (a mail server that was down)."""
    ws = context.workspace
    for line in finish_interrupted(ws, context.service):
        log.warning("interrupted production switch: %s", line)
    # Finishing a switch may have undone it: the run goes on from production as it is now.
    for name in context.models:
        context.production[name] = ws.registry.production_version(name)
    for name in context.models:
        for version in ws.registry.abandoned_candidates(name):
            if version.version_id in context.abandoned:
                continue  # a retry of this step
            ws.registry.abandon(version.version_id, reason=(
                "registered by a run that stopped before deciding it; promote it by hand "
                f"with `retrain promote {version.version_id} --force` if it is wanted"))
            log.warning("%s was left undecided by a run that stopped: abandoned",
                        version.version_id)
            context.abandoned.append(version.version_id)
    counts = context.service.flush()
    if counts["sent"] or counts["retry"] or counts["failed"]:
        log.info("outbox: %d delivered, %d to retry, %d failed", counts["sent"], counts["retry"],
                 counts["failed"])
    return counts


def _per_model(context: RunContext, what: str, check: Callable[[str], T],
               unchecked: Callable[[str, str], T]) -> dict[str, T]:
    """``check(name)`` for each model; a model whose own artifact is broken fails its part of
    the run (``unchecked`` stands in for its result) and the others go on. Data problems are
    the whole workspace's and stop the run."""
    out = {}
    for name in context.models:
        if name in context.failed:
            out[name] = unchecked(name, context.failed[name])
            continue
        try:
            out[name] = check(name)
        except ArtifactIntegrityError as exc:
            context.fail(name, f"{what}: {exc}")
            out[name] = unchecked(name, context.failed[name])
    return out


@step("check-drift")
def check_drift(context: RunContext) -> dict[str, DriftCheck]:
    """Drift of the rows newer than each production model's training window against its
    reference: feature, label and prediction drift."""
    ws = context.workspace
    return _per_model(
        context, "drift check",
        lambda name: check_model_drift(ws, name, cache=context.drift_cache,
                                       production=context.production[name],
                                       defer_render=True),
        lambda name, why: DriftCheck(name, False, note=f"not checked: {why}"))


@step("write-drift-reports", kind="task")
def write_drift_reports(context: RunContext, triggers: TriggerReport) -> int:
    """Render the drift checks' Evidently reports, after the run's decisions: a page for
    people that neither delays nor fails them. Returns how many were rendered."""
    return render_pending([check.reports for check in triggers.drift.values()])


@step("check-data-volume")
def check_data_volume(context: RunContext) -> dict[str, VolumeCheck]:
    """New labeled rows since each production model's training window vs the threshold."""
    return {name: check_volume(context.workspace, name, context.production[name])
            for name in context.models}


@step("check-performance")
def check_performance(context: RunContext) -> dict[str, PerformanceCheck]:
    """Each production model's primary metric on newly labeled rows vs at promotion."""
    promotion = context.workspace.settings.promotion

    def unchecked(name: str, why: str) -> PerformanceCheck:
        version = context.production[name]
        return PerformanceCheck(model=name, triggered=False, note=f"not checked: {why}",
                                metric=promotion.metric_for(version.task if version else "binary"))

    return _per_model(
        context, "performance check",
        lambda name: check_model_performance(context.workspace, name, context.production[name]),
        unchecked)


@step("skip-retrain", kind="task")
def skip_retrain(context: RunContext, triggers: TriggerReport) -> dict[str, str]:
    """Record in the audit log why each model is not retrained; returns the reasons."""
    reasons = {name: triggers.skip_reason(name) for name in context.healthy}
    for name, reason in reasons.items():
        context.workspace.registry.record(name, "skipped", reason=reason)
    return reasons


@step("load-new-data", kind="task")
def load_new_data(context: RunContext, plan: RetrainPlan) -> TrainingSets:
    """The validated training window of each dataset the models to retrain use, split by time
    into train and holdout (each dataset read once)."""
    return load_training_sets(context.workspace, plan.to_train, context.production)


@step("retrain-models", fits_models=True)
def retrain_models(context: RunContext, plan: RetrainPlan,
                   data: TrainingSets) -> dict[str, Candidate]:
    """Train and register one candidate per model that needs it; one model's failure does not
    stop the others."""
    log.info("retraining %s", ", ".join(f"{n} ({plan.trigger(n)})" for n in plan.to_train))
    # The fits may run at once, in the pool the runner supplies; the registrations are made
    # here, in the run's process, one model at a time.
    return train_candidates(context.workspace, plan.to_train, data, context.reason,
                            context.production, pool=context.model_pool)


@step("evaluate-models")
def evaluate_models(context: RunContext, candidates: dict[str, Candidate],
                    data: TrainingSets) -> dict[str, Evaluation]:
    """Compare each candidate with production on the same holdout."""
    out = {}
    for name, candidate in candidates.items():
        try:
            out.update(evaluate_candidates(context.workspace, {name: candidate}, data,
                                           context.production))
        except ArtifactIntegrityError as exc:
            context.fail(name, f"evaluation: {exc}")
    return out


@step("deploy-models")
def deploy_models(context: RunContext, evaluations: dict[str, Evaluation]) -> dict[str, Decision]:
    """Promote candidates that are enough better than production, reject the others; where
    approval is required, the approver is asked first."""
    return decide_all(context.workspace, evaluations, notifier=context.service,
                      approver=context.approver)


@step("send-notifications")
def send_notifications(context: RunContext, document: RunDocument) -> RunReports:
    """The drift alert (when drift was found), the run summary, and each model's report files."""
    text = run_summary_text(document)
    # In the run's logs; a console that prints the summary itself leaves this line out.
    log.info("retraining summary\n%s", text, extra={"run_summary": True})
    notifier = context.service
    triggers = document.triggers
    drift = {name: d.to_dict() for name, d in triggers.drift.models.items()}
    if triggers.drift.detected:
        notifier.send_drift_alert(drift, {
            name: drift_report_url(d, context.workspace.reports.link)
            for name, d in triggers.drift.models.items() if d.detected})
    notifier.send_retraining_summary(triggers.drift.detected, triggers.volume.met,
                                     {"models": {n: m.to_dict() for n, m in document.models.items()}},
                                     summary_text=text)
    return write_run_reports(context.workspace, document, context.run_id, text)
