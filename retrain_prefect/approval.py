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
from retrain_prefect.dashboard import model_slug


class PromotionApproval(RunInput):
    """The form the dashboard shows for a pending promotion."""

    approve: bool = False
    comment: str = ""
    approver: str = ""


def _table(evaluation: Evaluation) -> str:
    """The primary and guardrail metrics, narrow enough for the form."""
    cand, prod = evaluation.metrics.candidate or {}, evaluation.metrics.production or {}
    lines = ["| metric | candidate | production | difference |", "|---|---:|---:|---:|"]
    for metric in [evaluation.metric, *(m for m in evaluation.guardrails if m != evaluation.metric)]:
        c, p = cand.get(metric), prod.get(metric)
        lines.append(f"| {metric}{' (primary)' if metric == evaluation.metric else ''} | "
                     f"{'-' if c is None else f'{c:.4f}'} | {'-' if p is None else f'{p:.4f}'} | "
                     f"{'-' if c is None or p is None else f'{c - p:+.4f}'} |")
    return "\n".join(lines)


def _description(evaluation: Evaluation, reason: str) -> str:
    return (f"## Approve promotion of {evaluation.candidate_version}?\n\n"
            f"Replaces **{evaluation.production_version or 'nothing'}** in production "
            f"for model **{evaluation.model}**.\n\n**Why:** {reason}\n\n"
            f"{_table(evaluation)}\n\n"
            "Set `approve` and add a comment; `retrain approve RUN_ID` and "
            "`retrain reject RUN_ID --reason ...` do the same from a terminal.")


def _banner(parent_run_id: str | None, evaluation: Evaluation, text: str) -> None:
    """A markdown artifact on the pipeline run's own page (``approval-<model>``): it waits,
    for whom and how to answer, then how it was answered."""
    if not parent_run_id:
        return
    from prefect.client.schemas.actions import ArtifactCreate  # late: only when asking
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(
            key=f"approval-{model_slug(evaluation.model)}",
            type="markdown", flow_run_id=UUID(parent_run_id), data=text,
            description=f"Approval of {evaluation.candidate_version}"))


def prefect_approver(timeout_hours: float, parent_run_id: str | None = None) -> Approver:
    """An approver that pauses the current flow run until a person answers; the pipeline run
    (``parent_run_id``) says on its own page that it waits, and then how it was answered."""
    timeout = max(1, int(timeout_hours * 3600))
    poll = int(os.environ.get("RETRAIN_APPROVAL_POLL_SECONDS", "10"))

    def ask(evaluation: Evaluation, reason: str) -> Approval:
        form = PromotionApproval.with_initial_data(description=_description(evaluation, reason))
        _banner(parent_run_id, evaluation, (
            f"# Waiting for approval: {evaluation.candidate_version}\n\n"
            f"The promotion of **{evaluation.candidate_version}** (replacing "
            f"{evaluation.production_version or 'nothing'}) waits for a person, for at most "
            f"{timeout_hours:g} h (no answer: rejected). Answer in the form of the paused "
            f"`deploy-models` run, or from a terminal: `retrain approve {parent_run_id}` / "
            f"`retrain reject {parent_run_id} --reason ...`.\n\n**Why:** {reason}\n\n"
            f"{_table(evaluation)}"))
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll,
                                    key=f"approve-{evaluation.candidate_version}")
        except FlowPauseTimeout:
            approval = Approval(False, "timeout", f"no answer within {timeout_hours:g} h")
        else:
            approval = Approval(bool(answer.approve), answer.approver or "dashboard",
                                answer.comment)
        _banner(parent_run_id, evaluation, (
            f"# {evaluation.candidate_version}: "
            f"{'approved' if approval.approved else 'not approved'}\n\n"
            f"By **{approval.actor}**{': ' + approval.comment if approval.comment else ''}."))
        return approval

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
