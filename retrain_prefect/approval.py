"""Manual approval of promotions: the flow pauses with a form; people answer from the
dashboard, with ``retrain approve|reject RUN_ID``, or with ``resume_flow_run``.

A pause that nobody answers within ``[promotion] approval_timeout_hours`` counts as a rejection.
"""

from __future__ import annotations

import os
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterParentFlowRunId,
                                            FlowRunFilterState, FlowRunFilterStateType)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from retrain.errors import RetrainError
from retrain.evaluation.results import Evaluation
from retrain.promotion.approval import Approval, Approver
from retrain.reporting.evaluation import evaluation_markdown


class PromotionApproval(RunInput):
    """The form the dashboard shows for a pending promotion."""

    approve: bool = False
    comment: str = ""
    approver: str = ""


def _description(evaluation: Evaluation, reason: str) -> str:
    return (f"## Approve promotion of {evaluation.candidate_version}?\n\n"
            f"Replaces **{evaluation.production_version or 'nothing'}** in production "
            f"for model **{evaluation.model}**.\n\n**Why:** {reason}\n\n"
            f"{evaluation_markdown({evaluation.model: evaluation})}\n\n"
            "Set `approve` and add a comment; `retrain approve RUN_ID` and "
            "`retrain reject RUN_ID --reason ...` do the same from a terminal.")


def prefect_approver(timeout_hours: float) -> Approver:
    """An approver that pauses the current flow run until a person answers."""
    timeout = max(1, int(timeout_hours * 3600))
    poll = int(os.environ.get("RETRAIN_APPROVAL_POLL_SECONDS", "10"))

    def ask(evaluation: Evaluation, reason: str) -> Approval:
        form = PromotionApproval.with_initial_data(description=_description(evaluation, reason))
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll,
                                    key=f"approve-{evaluation.candidate_version}")
        except FlowPauseTimeout:
            return Approval(False, "timeout", f"no answer within {timeout_hours:g} h")
        return Approval(bool(answer.approve), answer.approver or "dashboard", answer.comment)

    return ask


def _paused_run(run_id: str) -> UUID:
    """The paused run itself, or the paused subflow run (deploy-models) of a pipeline run."""
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        raise RetrainError(f"{run_id!r} is not a flow run id (a UUID, as in the dashboard)") from None
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise RetrainError(f"no flow run {run_id} on the Prefect API") from None
        if run.state is not None and run.state.is_paused():
            return run.id
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
        if not children:
            raise RetrainError(f"flow run {run_id} is not waiting for an approval "
                               f"(state {run.state.name if run.state else 'unknown'})")
        return children[0].id


def answer(run_id: str, approve: bool, approver: str, comment: str = "") -> UUID:
    """Resume a paused promotion with a decision; returns the resumed run's id."""
    paused = _paused_run(run_id)
    result = resume_flow_run(paused, run_input={"approve": approve, "approver": approver,
                                                "comment": comment})
    if result is not None and getattr(result, "status", None) is not None \
            and str(result.status).upper().endswith("REJECT"):
        raise RetrainError(f"the Prefect API refused to resume {paused}: {result.details}")
    return paused
