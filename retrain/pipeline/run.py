"""The sequence of a retraining run, written once.

    flush-notifications -> check-drift -> check-data-volume -> (check-performance)
      -> skip-retrain
       | load-new-data -> retrain-models -> evaluate-models -> deploy-models
      -> write-drift-reports -> send-notifications

The Evidently pages of the drift checks are rendered by ``write-drift-reports``, after the
decisions (the checks' own numbers, which decide, are written with them).

``run_pipeline`` runs it with a runner: plain calls by default, Prefect subflows under the
``retraining-pipeline`` flow (``retrain_prefect.runner``). ``run_drift_check`` is the daily
check alone (drift and volume, nothing changed).
"""

from __future__ import annotations

from retrain.config import DEFAULT_DATASET
from retrain.pipeline import steps
from retrain.pipeline.context import RunContext, utc_now_text
from retrain.pipeline.document import DataSummary, ModelOutcome, RunDocument
from retrain.pipeline.plan import RetrainPlan, plan_retraining
from retrain.pipeline.runner import DirectRunner, Runner
from retrain.training.data import TrainingSets
from retrain.triggers.report import TriggerReport
from retrain.workspace import Workspace


def run_pipeline(ws: Workspace, models: list[str] | str | None = None, *, force: bool = False,
                 reason: str = "manual", check_performance: bool | None = None,
                 runner: Runner | None = None, context: RunContext | None = None) -> RunDocument:
    """One whole run; returns its document. ``context`` (made from the other arguments when
    not given) carries what an orchestrator supplies: the notifier, the approver, its run id."""
    run = runner or DirectRunner()
    ctx = context or RunContext.open(ws, models, reason=reason, force=force,
                                     check_performance=check_performance)
    run(steps.flush_notifications, ctx)
    triggers = TriggerReport(
        drift=run(steps.check_drift, ctx), volume=run(steps.check_data_volume, ctx),
        performance=run(steps.check_performance, ctx) if ctx.check_performance else None)
    plan = plan_retraining(ctx, triggers)
    data = candidates = evaluations = decisions = None
    if not plan.to_train:
        if ctx.healthy:
            run(steps.skip_retrain, ctx, triggers)
    else:
        data = run(steps.load_new_data, ctx, plan)
        candidates = run(steps.retrain_models, ctx, plan, data)
        evaluations = run(steps.evaluate_models, ctx, candidates, data)
        decisions = run(steps.deploy_models, ctx, evaluations)
    run(steps.write_drift_reports, ctx, triggers)
    document = run_document(ctx, triggers, plan, data, candidates, evaluations, decisions)
    run(steps.send_notifications, ctx, document)
    return document


def run_drift_check(ws: Workspace, models: list[str] | str | None = None, *,
                    runner: Runner | None = None, context: RunContext | None = None
                    ) -> TriggerReport:
    """The drift and volume checks alone; changes nothing. Meant to be announced
    (``context.announce``): the orchestrator turns what fired into pipeline runs."""
    run = runner or DirectRunner()
    ctx = context or RunContext.open(ws, models, announce=True)
    report = TriggerReport(drift=run(steps.check_drift, ctx), volume=run(steps.check_data_volume, ctx))
    run(steps.write_drift_reports, ctx, report)
    return report


def run_document(ctx: RunContext, triggers: TriggerReport, plan: RetrainPlan,
                 data: TrainingSets | None = None, candidates: dict | None = None,
                 evaluations: dict | None = None, decisions: dict | None = None) -> RunDocument:
    """What the run found and decided, per model, with production as it is now."""
    candidates, evaluations, decisions = candidates or {}, evaluations or {}, decisions or {}
    registry = ctx.workspace.registry
    outcomes = {}
    for name in ctx.models:
        after = registry.production_version(name)
        outcome = ModelOutcome(production_version_before=ctx.production_id(name),
                               production_version_after=after.version_id if after else None,
                               trigger=plan.trigger(name))
        if name in ctx.failed and name not in decisions:
            outcome.decision, outcome.reason = "failed", ctx.failed[name]
        elif outcome.trigger is None:
            outcome.reason = triggers.skip_reason(name)
        elif name in candidates and candidates[name].error:
            outcome.decision, outcome.reason = "failed", candidates[name].error
        if name in candidates:
            outcome.features_added = candidates[name].features_added
            outcome.new_columns_ignored = candidates[name].new_columns_ignored
        if name in evaluations:
            ev = evaluations[name]
            outcome.candidate_version, outcome.metrics = ev.candidate_version, ev.metrics
            outcome.relative_improvement, outcome.metric = ev.relative_improvement, ev.metric
            outcome.improvement_basis = ev.improvement_basis
            outcome.metric_difference = ev.metric_difference
        if name in decisions:
            outcome.decision, outcome.reason = decisions[name].decision, decisions[name].reason
        outcomes[name] = outcome
    return RunDocument(
        reason=ctx.reason, forced=ctx.force, started_at=ctx.started_at, finished_at=utc_now_text(),
        triggers=triggers.summary(), retrained=bool(candidates),
        data=_default_data(data), models=outcomes,
        datasets={} if data is None else {name: DataSummary.from_dict(window.summary())
                                          for name, window in data.by_dataset.items()},
        success=not any(o.decision == "failed" for o in outcomes.values()),
        abandoned_candidates=list(ctx.abandoned))


def _default_data(data: TrainingSets | None) -> DataSummary | None:
    """The document's ``data``: the ``[data]`` dataset's window, or the only one trained on."""
    if data is None or not data.by_dataset:
        return None
    window = data.by_dataset.get(DEFAULT_DATASET) or (
        next(iter(data.by_dataset.values())) if len(data.by_dataset) == 1 else None)
    return None if window is None else DataSummary.from_dict(window.summary())
