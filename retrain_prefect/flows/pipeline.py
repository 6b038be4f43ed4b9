"""The retraining pipeline as a Prefect flow: the library's run (``retrain.pipeline.run``),
each step a subflow or task named as the step.

    retraining-pipeline
      (flush-notifications) -> check-drift -> check-data-volume -> (check-performance)
      -> skip-retrain | load-new-data -> retrain-models -> evaluate-models -> deploy-models
      -> send-notifications

The parent run is named after its models and reason and tagged ``model:<name>`` and
``reason:<reason>``. Each step publishes its events and artifacts from inside its own run
(``retrain_prefect.events``, ``retrain_prefect.dashboard``); where approval is required,
``deploy-models`` pauses for it (``retrain_prefect.approval``). ``retrain-models`` runs on the
task runner ``[orchestration]`` names (threads, processes, a Dask cluster), each model's fit a
task ``train · <model>`` of it; the registrations are made in its own process
(``retrain_prefect.training``).
"""

from __future__ import annotations

from prefect import flow, tags
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as current_run

from retrain.pipeline.context import RunContext
from retrain.pipeline.document import RunDocument
from retrain.pipeline.run import run_pipeline
from retrain_prefect import dashboard, events
from retrain_prefect.approval import prefect_approver
from retrain_prefect.common import notifier, run_tags, step_settings, tag_current_run, workspace
from retrain_prefect.runner import PrefectRunner

PUBLISHERS = {"check-drift": events.checked_drift, "check-data-volume": events.checked_volume,
              "check-performance": events.checked_performance,
              "skip-retrain": events.skipped, "retrain-models": events.registered,
              "deploy-models": events.decided}


def _run_name() -> str:
    parameters = current_run.parameters
    models = parameters.get("models") or ["all models"]
    return f"{', '.join(models)} ({parameters.get('reason', 'manual')})"


@flow(name="retraining-pipeline", log_prints=True, flow_run_name=_run_name)
def retraining_pipeline(models: list[str] | None = None, force: bool = False,
                        reason: str = "manual", config: str | None = None,
                        check_performance_trigger: bool | None = None) -> RunDocument:
    """Check triggers; retrain, evaluate and promote the models that need it."""
    ws = workspace(config)
    flow_run = FlowRunContext.get().flow_run
    context = RunContext.open(
        ws, models, reason=reason, force=force, check_performance=check_performance_trigger,
        notifier=notifier(ws), run_id=str(flow_run.id),
        approver=prefect_approver(ws.settings.promotion.approval_timeout_hours,
                                  parent_run_id=str(flow_run.id)))
    tag_current_run(run_tags(context.models, reason))
    # Subflows carry the run's tags; tasks do not (see retrain_prefect.common.untagged).
    reports = {}  # the send-notifications step's files, published on this run's own page
    publishers = {**PUBLISHERS,
                  "send-notifications": lambda _context, files, _document: reports.update(files=files)}
    with tags(*run_tags(context.models, reason)), step_settings():
        document = run_pipeline(ws, runner=PrefectRunner(publishers), context=context)
    dashboard.publish_run(context, reports["files"], document, run_name=flow_run.name)
    return document


if __name__ == "__main__":
    retraining_pipeline()
