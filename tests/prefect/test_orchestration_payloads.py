"""Why Prefect's cost per run does not grow with the data: the training frames never travel
through Prefect.

A step's inputs and outputs (the run's context, the training sets, the candidates) are handed
from step to step in the process (``retrain_prefect.runner``); what Prefect records of a run
is its parameters (the subflows': the run's models and reason), its states, and, with
Prefect's defaults, no results. Were a frame passed as a subflow parameter or a step's result
persisted, every run would serialize its training data into the API's database or the result
storage, and the overhead would grow with the rows. This test runs the pipeline flow, reads
back everything Prefect recorded of it (every flow run's parameters, every task run's inputs,
every state's data and the persisted results they point to) and checks that none of it is a
frame or more than a few KB: with Prefect's defaults, and with a profile that persists every
result.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from uuid import UUID

import pytest

pytestmark = pytest.mark.slow

SMALL_PAYLOAD = 4096  # bytes: what a run's parameters or a state's data may take, at most
# What one persisted result may take, where a user turns persistence on: the run's document is
# the largest (about 4.5 KB for two models); a frame of the test's 3,600 rows is ~300 KB.
RESULT_LIMIT = 16384
PIPELINE_PARAMETERS = {"models", "force", "reason", "config", "check_performance_trigger"}
FIT_INPUTS = {"fit", "job", "model"}
STEP_PARAMETERS = {"models", "reason"}
TASK_STEPS = {"flush-notifications", "load-new-data"}  # the bootstrap run's task steps


@pytest.fixture(params=["prefect defaults", "results persisted"])
def persistence(request) -> bool:
    """Prefect's defaults (which retrain keeps: no result is persisted), or a user's profile
    that persists every flow's and task's result: then each must still be small."""
    return request.param == "results persisted"


@pytest.fixture
def pipeline(harness, monkeypatch, tmp_path, persistence):
    """The pipeline flow module, with its results (if any are persisted) under ``tmp_path``."""
    from prefect.settings import (PREFECT_RESULTS_LOCAL_STORAGE_PATH,
                                  PREFECT_RESULTS_PERSIST_BY_DEFAULT,
                                  PREFECT_TASKS_DEFAULT_PERSIST_RESULT, temporary_settings)

    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    from retrain_prefect import common
    from retrain_prefect.flows import pipeline as flows
    common._open_workspace.cache_clear()
    updates = {PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp_path / "results"}
    if persistence:
        updates.update({PREFECT_RESULTS_PERSIST_BY_DEFAULT: True,
                        PREFECT_TASKS_DEFAULT_PERSIST_RESULT: True})
    with temporary_settings(updates=updates):
        yield flows
    common._open_workspace.cache_clear()


def _size(value) -> int:
    return len(json.dumps(value, default=str))


def _is_frame(value) -> bool:
    type_name = f"{type(value).__module__}.{type(value).__name__}"
    return type_name.startswith(("polars.", "pandas.", "pyarrow.", "numpy."))


def flow_runs_of(client, parent_id: UUID) -> list:
    """The parent flow run and every flow run nested under it, at any depth."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    runs, frontier = [client.read_flow_run(parent_id)], [parent_id]
    while frontier:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)))
        runs += children
        frontier = [c.id for c in children]
    return runs


def task_runs_of(client, flow_run_ids: list[UUID], expected_names: set[str]) -> list:
    """The task runs of those flow runs, once the server has recorded the expected ones (it
    records task runs from their events, a moment after they ran)."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    deadline = time.monotonic() + 30
    while True:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids)))
        if expected_names <= {r.name for r in runs} or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def state_data_problems(what: str, states: list) -> list[str]:
    """What a run's states carry that they should not: a frame or more than a few KB, in the
    state or in the persisted result it points to."""
    problems = []
    for state in states:
        data = state.data
        if data is None:
            continue
        dumped = data.model_dump(mode="json") if hasattr(data, "model_dump") else data
        if _is_frame(data) or _size(dumped) > SMALL_PAYLOAD:
            problems.append(f"{what}: its {state.type.value} state carries {_size(dumped)} bytes")
        key = dumped.get("storage_key") if isinstance(dumped, dict) else None
        if key and Path(key).is_file() and Path(key).stat().st_size > RESULT_LIMIT:
            problems.append(f"{what}: its result was persisted, {Path(key).stat().st_size} "
                            f"bytes at {key}")
    return problems


def test_prefect_records_no_frames_of_a_run_only_small_parameters_and_results(
        pipeline, client, make_workspace, tmp_path, persistence):
    from retrain.pipeline.document import RunDocument

    ws = make_workspace()
    # The bootstrap run goes through every step that handles the training frames:
    # load-new-data (a task returning them), retrain-models and evaluate-models (subflows
    # taking them).
    state = pipeline.retraining_pipeline(config=str(ws.settings.base_dir / "retrain.toml"),
                                         return_state=True)
    assert state.is_completed(), state
    document = state.result()
    assert isinstance(document, RunDocument)
    assert {m.decision for m in document.models.values()} == {"bootstrapped"}

    parent_id = state.state_details.flow_run_id
    flow_runs = flow_runs_of(client, parent_id)
    names = {f.id: f.name for f in client.read_flows()}
    problems = []
    for run in flow_runs:
        what = f"flow run {names[run.flow_id]!r}"
        expected = PIPELINE_PARAMETERS if run.id == parent_id else STEP_PARAMETERS
        if not set(run.parameters) <= expected:
            problems.append(f"{what}: parameters {sorted(run.parameters)}, expected only "
                            f"{sorted(expected)}")
        if _size(run.parameters) > SMALL_PAYLOAD:
            problems.append(f"{what}: parameters take {_size(run.parameters)} bytes")
        problems += state_data_problems(what, client.read_flow_run_states(run.id))
    steps = {names[r.flow_id] for r in flow_runs if r.id != parent_id}
    assert {"check-drift", "retrain-models", "evaluate-models", "deploy-models"} <= steps, steps

    task_runs = task_runs_of(client, [r.id for r in flow_runs], TASK_STEPS)
    assert TASK_STEPS <= {r.name for r in task_runs}, sorted(r.name for r in task_runs)
    for run in task_runs:
        what = f"task run {run.name!r}"
        # A task's inputs are recorded by name (with the upstream runs they came from): the
        # step tasks take the run's models and reason; the tasks that stand for subflows in
        # their parent take the subflow's parameters; a model's fit (``train · <model>``)
        # takes its job, which goes to the task runner's worker and is recorded by name only.
        allowed = FIT_INPUTS if run.name.startswith("train · ") else STEP_PARAMETERS
        if not set(run.task_inputs) <= allowed:
            problems.append(f"{what}: inputs {sorted(run.task_inputs)}")
        if _size({k: [i.model_dump(mode="json") for i in v] for k, v in run.task_inputs.items()}) > SMALL_PAYLOAD:
            problems.append(f"{what}: its inputs take more than {SMALL_PAYLOAD} bytes")
        problems += state_data_problems(what, client.read_task_run_states(run.id))
    # What the result storage holds: nothing with Prefect's defaults; small typed values
    # (decisions, candidates' metrics, the document) where persistence is on.
    stored = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    if not persistence:
        problems += [f"a result was persisted: {p} ({p.stat().st_size} bytes)" for p in stored]
    problems += [f"a persisted result takes {p.stat().st_size} bytes: {p}"
                 for p in stored if p.stat().st_size > RESULT_LIMIT]
    assert not problems, "\n".join(problems)
    for run in flow_runs[1:]:  # a step subflow: the run's models and reason, nothing else
        assert set(run.parameters) == STEP_PARAMETERS, (names[run.flow_id], sorted(run.parameters))
