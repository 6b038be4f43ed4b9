"""The Prefect flows under ``prefect_test_harness`` (one harness for the whole session).

What the flows must show: the parent ``retraining-pipeline`` runs its steps as subflows nested
under it, records its decisions in the registry, publishes the summary artifact and emits the
``retrain.*`` events; invalid data fails the run and leaves the registry as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import numpy as np
import polars as pl
import pytest

from prefect_events import wait_for_events
from retrain.errors import DataValidationError
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace

pytestmark = pytest.mark.slow

MODELS = ("random_forest", "lightgbm")
ACTOR = "flow-test"
RETRAIN_STEPS = {"check-drift", "check-data-volume", "retrain-models", "evaluate-models",
                 "deploy-models", "send-notifications"}
SKIP_STEPS = {"check-drift", "check-data-volume", "send-notifications"}


@pytest.fixture
def pipeline(harness, monkeypatch):
    """``retrain_prefect.flows.pipeline`` with a fresh workspace cache and a known actor for the audit log."""
    monkeypatch.setenv("RETRAIN_ACTOR", ACTOR)
    for key in [k for k in os.environ if k.startswith("RETRAIN_") and "__" in k]:
        monkeypatch.delenv(key)
    from retrain_prefect import common
    from retrain_prefect.flows import pipeline as flows
    common._open_workspace.cache_clear()
    yield flows
    common._open_workspace.cache_clear()


# Reading back what Prefect recorded -------------------------------------------------------

def flow_names(client) -> dict[UUID, str]:
    return {f.id: f.name for f in client.read_flows()}


def subflow_runs(client, parent_id: UUID) -> dict[str, object]:
    """The flow runs nested under ``parent_id``, by flow name (each step runs once)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    names = flow_names(client)
    by_name = {names[r.flow_id]: r for r in runs}
    assert len(by_name) == len(runs), "a step ran more than once"
    return by_name


def assert_nested(client, parent_id: UUID, expected_steps: set[str]) -> dict[str, object]:
    children = subflow_runs(client, parent_id)
    assert set(children) == expected_steps
    for name, run in children.items():
        assert run.parent_task_run_id is not None, name
        assert client.read_task_run(run.parent_task_run_id).flow_run_id == parent_id
        assert run.state_type.value == "COMPLETED", name
    return children


def task_run_names(client, flow_run_id: UUID) -> set[str]:
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    runs = client.read_task_runs(task_run_filter=TaskRunFilter(
        flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id])))
    return {r.name for r in runs}  # named after their step


def _artifacts_of(flow_run_id: UUID):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    return ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))


def artifact(client, key: str, flow_run_id: UUID):
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                ArtifactFilterKey)
    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert len(found) == 1, f"expected one {key!r} artifact from flow run {flow_run_id}"
    return found[0]


def run_logs(client, flow_run_id: UUID) -> list[str]:
    """The messages of a flow run's logs, as the dashboard shows them (sent ones only)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker
    APILogWorker.drain_all(timeout=10)
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [entry.message for entry in logs]


def run_flow(flows, **parameters):
    state = flows.retraining_pipeline(**parameters, return_state=True)
    assert state.is_completed(), state
    return state.state_details.flow_run_id, state.result().to_dict()


def registry_snapshot(config: Path) -> tuple[dict, int]:
    """(version id -> status, number of audit events) of every model."""
    registry = Workspace.open(config).registry
    statuses = {v.version_id: v.status for n in MODELS for v in registry.versions(n)}
    return statuses, sum(len(registry.history(n)) for n in MODELS)


# The main scenario ------------------------------------------------------------------------

def test_bootstrap_then_drift_then_skip(pipeline, client, make_workspace, drift_month):
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"

    # Run 1: no production models yet, so both are bootstrapped.
    run1, doc1 = run_flow(pipeline, config=str(config))
    assert {n: m["decision"] for n, m in doc1["models"].items()} == {n: "bootstrapped" for n in MODELS}
    registry = Workspace.open(config).registry
    for name in MODELS:
        assert [(v.version_id, v.status) for v in registry.versions(name)] == [(f"{name}-v1", "production")]
        events = registry.history(name)
        assert [(e.action, e.version_id) for e in events] == [
            ("registered", f"{name}-v1"), ("evaluated", f"{name}-v1"), ("promoted", f"{name}-v1")]
        assert all(e.actor == ACTOR and e.reason and e.at for e in events)
        assert events[0].reason == "manual"
    assert_nested(client, run1, RETRAIN_STEPS)
    assert "load-new-data" in task_run_names(client, run1)

    # Run 2: a drifted month arrives; the monthly run retrains and compares with production.
    drift_month(ws)
    run2, doc2 = run_flow(pipeline, config=str(config), reason="schedule")
    assert doc2["reason"] == "schedule"
    assert doc2["triggers"]["drift"]["detected"] is True
    assert doc2["triggers"]["drift"]["drifted_features"]
    assert doc2["triggers"]["volume"]["met"] is True and doc2["triggers"]["volume"]["new_rows"] == 2000
    registry = Workspace.open(config).registry
    assert set(doc2["models"]) == set(MODELS)
    for name, entry in doc2["models"].items():
        assert entry["production_version_before"] == f"{name}-v1"
        assert entry["candidate_version"] == f"{name}-v2"
        assert entry["metrics"]["production"] is not None
        # The seeded demo's challengers close about half of the shortfall after the drifted month.
        assert entry["relative_improvement"] > 0.2 and entry["decision"] == "promoted", entry
        production = [v.version_id for v in registry.versions(name) if v.status == "production"]
        assert production == [f"{name}-v2"]
        trail = [(e.action, e.version_id) for e in registry.history(name)][3:]
        assert trail == [("registered", f"{name}-v2"), ("evaluated", f"{name}-v2"),
                         ("archived", f"{name}-v1"), ("promoted", f"{name}-v2")]
        decision_event = registry.history(name)[-1]
        assert decision_event.actor == ACTOR and "needs +5.00%" in decision_event.reason
        assert decision_event.details["metrics"]["production"] is not None

    children = assert_nested(client, run2, RETRAIN_STEPS)
    for name, run in children.items():  # named after their step and the run's models
        assert run.name == f"{name} · random_forest, lightgbm", run.name
    # The library's INFO lines are in each step's own run logs: the triggers with their
    # numbers, each candidate, the evaluation and the decision with its reason.
    logs = {name: run_logs(client, run.id) for name, run in children.items()}
    assert any(line.startswith("drift lightgbm:") and "DETECTED" in line for line in logs["check-drift"])
    assert any(line.startswith("volume lightgbm: 2000 new labeled rows") for line in logs["check-data-volume"])
    assert any(line.startswith("training lightgbm (lightgbm)") for line in logs["retrain-models"])
    assert any(line.startswith("evaluated lightgbm-v2: roc_auc") for line in logs["evaluate-models"])
    assert any("lightgbm-v2" in line and "promot" in line for line in logs["deploy-models"])
    # No channel is configured: the log channel's notices are lines of the run's logs.
    assert any(line.startswith("notification: [retrain] retraining summary")
               for line in logs["send-notifications"]), logs["send-notifications"]
    tags = {"reason:schedule", "model:lightgbm", "model:random_forest"}
    assert tags <= set(children["retrain-models"].tags)
    parent = client.read_flow_run(run2)
    assert tags <= set(parent.tags) and parent.name == "all models (schedule)"

    # The pipeline acts on the drift itself: it reports it as checked, not as "detected"
    # (which would start another run through the automation).
    checked = wait_for_events(client, "retrain.drift.checked", children["check-drift"].id, len(MODELS))
    assert sorted(e.resource.id for e in checked) == sorted(f"retrain.model.{n}" for n in MODELS)
    for event in checked:
        assert event.resource.name in MODELS
        assert event.payload["detected"] is True and event.payload["drifted_features"]
        assert event.payload["share"] > 0 and event.payload["current_rows"] > 0
    assert not wait_for_events(client, "retrain.drift.detected", children["check-drift"].id, 1, timeout=2)
    registered = wait_for_events(client, "retrain.model.registered", children["retrain-models"].id, len(MODELS))
    assert sorted(e.resource.id for e in registered) == sorted(f"retrain.model.{n}" for n in MODELS)
    for event in registered:
        assert event.payload["reason"] == "schedule" and event.payload["metrics"]["roc_auc"] > 0
        assert event.payload["data"]["train_rows"] > 0
    for name, entry in doc2["models"].items():
        event_name = f"retrain.model.{entry['decision']}"
        decided = wait_for_events(client, event_name, children["deploy-models"].id, 1)
        (event,) = [e for e in decided if e.resource.id == f"retrain.model.{name}"]
        assert event.payload["relative_improvement"] == entry["relative_improvement"]
        assert event.payload["threshold"] == 0.05
        assert event.payload["metrics"]["production"]["roc_auc"] == entry["metrics"]["production"]["roc_auc"]

    # The run's artifacts are on the pipeline run's own page, each naming the run.
    notifications = run2
    assert not client.read_artifacts(artifact_filter=_artifacts_of(children["send-notifications"].id))
    summary = artifact(client, "retraining-summary", notifications)
    assert parent.name in summary.description
    assert summary.type == "markdown"
    assert summary.data.startswith("# Retraining run: schedule")
    assert "drift:  DETECTED" in summary.data
    for name, entry in doc2["models"].items():
        assert f"{name}-v2" in summary.data and entry["decision"].upper() in summary.data
        key = name.replace("_", "-")
        model_summary = artifact(client, f"retrain-summary-{key}", notifications).data
        assert model_summary.startswith(f"# {name}: {entry['decision'].upper()}")
        assert "roc_auc **(primary)**" in model_summary and "| drift |" in model_summary
        assert "drift report (Evidently HTML)" in model_summary
        metrics = artifact(client, f"retrain-metrics-{key}", notifications)
        rows = json.loads(metrics.data)
        primary = next(r for r in rows if r["primary"])
        assert primary["metric"] == "roc_auc"
        assert primary["candidate"] == round(entry["metrics"]["candidate"]["roc_auc"], 4)
        assert primary["production"] == round(entry["metrics"]["production"]["roc_auc"], 4)
        report = artifact(client, f"retrain-report-{key}", notifications)
        path = Path(report.data.split("(file://", 1)[1].split(")", 1)[0])
        assert path.is_file() and path.read_text().startswith(f"# {name}:")

    # Run 3: nothing new since the last training window, so every model is skipped.
    before = registry_snapshot(config)[0]
    run3, doc3 = run_flow(pipeline, config=str(config))
    assert {n: m["decision"] for n, m in doc3["models"].items()} == {n: "skipped" for n in MODELS}
    assert doc3["retrained"] is False
    assert registry_snapshot(config)[0] == before
    registry = Workspace.open(config).registry
    for name in MODELS:
        last = registry.history(name)[-1]
        assert (last.action, last.actor) == ("skipped", ACTOR)
        assert last.reason.startswith("no trigger fired")
    assert_nested(client, run3, SKIP_STEPS)
    assert "skip-retrain" in task_run_names(client, run3)
    skipped = wait_for_events(client, "retrain.pipeline.skipped", run3, len(MODELS))
    assert sorted(e.resource.id for e in skipped) == sorted(f"retrain.model.{n}" for n in MODELS)
    for event in skipped:
        assert event.payload["new_rows"] == 0 and event.payload["volume_threshold"] == 1000
        assert event.payload["drift_detected"] is False
        assert event.payload["reason"].startswith("no trigger fired")


# The daily drift check ----------------------------------------------------------------------

@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_a_multiclass_and_a_regression_workspace_run_end_to_end(pipeline, client, make_workspace,
                                                                drift_month, task, tmp_path):
    """Bootstrap, then a drifted month, then promotion, through the Prefect pipeline; the
    versions, metrics, label and prediction drift, `retrain predict` and the prediction
    service all speak the task."""
    from retrain.stats.metrics import DEFAULT_METRIC, METRICS_BY_TASK
    ws = make_workspace(task=task)
    config = ws.settings.base_dir / "retrain.toml"
    metric = DEFAULT_METRIC[task]

    run1, doc1 = run_flow(pipeline, config=str(config))
    assert {n: m["decision"] for n, m in doc1["models"].items()} == dict.fromkeys(MODELS, "bootstrapped")
    assert doc1["data"]["task"] == task
    drift_month(ws)
    run2, doc2 = run_flow(pipeline, config=str(config), reason="schedule")
    assert_nested(client, run2, RETRAIN_STEPS)
    assert doc2["triggers"]["drift"]["detected"] is True
    registry = Workspace.open(config).registry
    for name, entry in doc2["models"].items():
        assert entry["metric"] == metric and entry["decision"] == "promoted", entry
        assert set(entry["metrics"]["candidate"]) == set(METRICS_BY_TASK[task])
        assert entry["relative_improvement"] > 0.05
        assert [(v.version_id, v.status, v.task) for v in registry.versions(name)] == [
            (f"{name}-v1", "archived", task), (f"{name}-v2", "production", task)]
        # The label's drift is judged as the task's kind of column: class counts or values.
        label = doc2["triggers"]["drift"]["models"][name]["label_drift"]
        kinds = {row["kind"] for row in label["table"]}
        assert kinds == ({"numeric"} if task == "regression" else {"categorical"})
        prediction = doc2["triggers"]["drift"]["models"][name]["prediction_drift"]
        assert prediction["table"], prediction
    summary = artifact(client, "retrain-summary-lightgbm", run2).data
    assert f"{metric} **(primary)**" in summary

    rows = pl.read_parquet(sorted((ws.settings.base_dir / "data").glob("*.parquet"))[-1]).head(25)
    target = ws.settings.data.target
    scoring = tmp_path / "score.parquet"
    rows.drop(target).write_parquet(scoring)
    out = tmp_path / "scored.parquet"
    cli = subprocess.run([sys.executable, "-m", "retrain.cli", "predict", "lightgbm", str(scoring),
                          "--output", str(out), "--config", str(config)],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    scored = pl.read_parquet(out)
    model = registry.load(registry.production_version("lightgbm"))
    if task == "regression":
        assert "probability" not in scored.columns
        assert scored["prediction"].to_list() == pytest.approx(
            model.predict_scores(rows).tolist(), rel=1e-12)
    else:
        assert [f"probability_{c}" for c in model.classes] == [
            c for c in scored.columns if c.startswith("probability_")]
        assert set(scored["prediction"].to_list()) <= set(model.classes)

    from serving import AUTH, client_for
    features = {k: v for k, v in rows.row(0, named=True).items()
                if k not in ("application_id", "applied_at", target)}
    with client_for(Workspace.open(config)) as api:
        answer = api.post("/predict/lightgbm", json={"request_id": "t-1", "features": features},
                          headers=AUTH).json()
        expected = model.predict_scores(rows.head(1))
        if task == "regression":
            assert answer["probability"] is None and "probabilities" not in answer
            assert answer["prediction"] == pytest.approx(float(expected[0]), rel=1e-12)
            ok = api.post("/feedback", json={"request_id": "t-1", "label": 1234.5,
                                             "model": "lightgbm"}, headers=AUTH)
        else:
            assert set(answer["probabilities"]) == {str(c) for c in model.classes}
            best = int(np.argmax(expected[0]))
            assert answer["prediction"] == model.classes[best]
            assert answer["probability"] == pytest.approx(float(expected[0][best]), rel=1e-12)
            ok = api.post("/feedback", json={"request_id": "t-1", "label": len(model.classes) - 1,
                                             "model": "lightgbm"}, headers=AUTH)
            bad = api.post("/feedback", json={"request_id": "t-1", "label": len(model.classes),
                                              "model": "lightgbm"}, headers=AUTH)
            assert bad.status_code == 422 and "position in the model's classes" in bad.text
        assert ok.status_code == 202, ok.text


def test_drift_check_announces_what_needs_retraining_and_changes_nothing(
        pipeline, client, make_workspace, drift_month):
    from retrain_prefect.flows.drift_check import drift_check
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"
    run_pipeline(ws)  # production versions, without Prefect
    drift_month(ws)
    before = registry_snapshot(config)

    state = drift_check(config=str(config), return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert {n: result["drift"][n]["detected"] for n in MODELS} == {n: True for n in MODELS}
    assert registry_snapshot(config) == before  # no version, status or audit event changed

    run_id = state.state_details.flow_run_id
    children = assert_nested(client, run_id, {"check-drift", "check-data-volume"})
    for run in children.values():  # the drift check's steps are tagged like the pipeline's
        assert {"model:lightgbm", "model:random_forest", "reason:schedule"} <= set(run.tags)
    detected = wait_for_events(client, "retrain.drift.detected", children["check-drift"].id, len(MODELS))
    assert sorted(e.resource.name for e in detected) == sorted(MODELS)
    assert all(e.payload["detected"] and e.payload["drifted_features"] for e in detected)
    volume = wait_for_events(client, "retrain.volume.threshold-met", children["check-data-volume"].id,
                             len(MODELS))
    assert {(e.resource.name, e.payload["new_rows"], e.payload["threshold"]) for e in volume} == {
        (n, 2000, 1000) for n in MODELS}
    drift_table = artifact(client, "retrain-drift-lightgbm", run_id)
    assert drift_table.data.startswith("# lightgbm: drift and volume") and "| drift |" in drift_table.data
    assert {"model:lightgbm", "model:random_forest"} <= set(client.read_flow_run(run_id).tags)


# Invalid data -----------------------------------------------------------------------------

def _month(ws: Workspace, index: int) -> pl.DataFrame:
    return pl.read_parquet(ws.settings.base_dir / "data" / f"applications_{index:02d}.parquet")


def _newer(ws: Workspace, frame: pl.DataFrame) -> pl.DataFrame:
    """Rows moved after everything in the store (so they are 'new data')."""
    return frame.with_columns(pl.col("applied_at").dt.offset_by("6mo"))


BAD_DATA = {
    # A feature column that became text in the newest file.
    "retyped feature": (lambda ws: _newer(ws, _month(ws, 1)).with_columns(
        pl.col("income").cast(pl.String)), "'income'", "type changed"),
    # A feature that arrived empty.
    "all-null feature": (lambda ws: _newer(ws, _month(ws, 1)).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("months_employed")), "'months_employed'",
        "all values are null"),
    # A third label: passes the drift check, fails when the training window is loaded.
    "three classes": (lambda ws: _newer(ws, pl.concat([_month(ws, 1), _month(ws, 2)])).with_columns(
        pl.when(pl.col("age") > 60).then(2).otherwise(pl.col("defaulted")).cast(pl.Int8)
        .alias("defaulted")), "'defaulted'", "2 classes"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_invalid_data_fails_the_run_and_changes_nothing(pipeline, client, make_workspace, case):
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"
    run_pipeline(ws)  # bootstrap without Prefect: quicker, and not what is tested here
    make_bad, column, problem = BAD_DATA[case]
    make_bad(ws).write_parquet(ws.settings.base_dir / "data" / "applications_99.parquet")
    before = registry_snapshot(config)

    with pytest.raises(DataValidationError) as raised:
        pipeline.retraining_pipeline(config=str(config), reason="schedule")
    assert column in str(raised.value) and problem in str(raised.value)

    assert registry_snapshot(config) == before  # same versions and statuses, no audit events
    from prefect.client.schemas.sorting import FlowRunSort
    latest = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=20)
    names = flow_names(client)
    parent = next(r for r in latest if names[r.flow_id] == "retraining-pipeline"
                  and r.parameters.get("config") == str(config))
    assert parent.state_type.value == "FAILED"
    assert column in parent.state.message


# The console script against a Prefect API ------------------------------------------------

def test_an_unreadable_file_fails_the_flow_naming_it(pipeline, client, make_workspace):
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"
    run_pipeline(ws)
    (ws.settings.base_dir / "data" / "broken.parquet").write_bytes(b"PAR1 truncated")
    before = registry_snapshot(config)
    with pytest.raises(DataValidationError, match="broken.parquet: not a readable Parquet file"):
        pipeline.retraining_pipeline(config=str(config), reason="schedule")
    assert registry_snapshot(config) == before


def test_cli_runs_the_flow_on_the_server_in_prefect_api_url(harness, client, make_workspace, tmp_path):
    ws = make_workspace()
    config = ws.settings.base_dir / "retrain.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RETRAIN_"))}
    env.update(PREFECT_API_URL=harness, PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    exe = Path(sys.executable).with_name("retrain")
    run = subprocess.run([exe, "--config", config, "run", "--json", "--model", "lightgbm"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)  # exactly one JSON document on stdout
    assert doc["models"]["lightgbm"]["decision"] == "bootstrapped"
    assert "Starting temporary server" not in run.stderr  # it used the server it was given
    # The library's lines outside a flow run stay on the console, without Prefect's warning.
    assert "without a flow run id" not in run.stderr and "UserWarning" not in run.stderr
    assert run.stderr.count("Retraining run") == 0  # the summary is on stdout (--json: the document)

    names = flow_names(client)
    # (the session's server also holds other modules' runs: this workspace's config tells)
    parents = [r for r in client.read_flow_runs(limit=200)
               if names[r.flow_id] == "retraining-pipeline"
               and r.parameters.get("config") == str(config)]
    assert len(parents) == 1
    assert parents[0].state_type.value == "COMPLETED"
    assert_nested(client, parents[0].id, RETRAIN_STEPS)

    # Invalid data through Prefect: one line on stderr naming the column, no traceback (the
    # dashboard keeps it), nothing on stdout, nothing written to the registry.
    BAD_DATA["retyped feature"][0](ws).write_parquet(
        ws.settings.base_dir / "data" / "applications_99.parquet")
    before = registry_snapshot(config)
    failed = subprocess.run([exe, "--config", config, "run", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr, failed.stderr
    errors = [x for x in failed.stderr.splitlines() if x.startswith("retrain: error:")]
    assert len(errors) == 1 and "'income'" in errors[0]
    assert registry_snapshot(config) == before


def test_a_long_lived_process_sees_changed_overrides(pipeline, make_workspace, monkeypatch):
    """The workspace is cached across subflows, but not across a changed environment: a forced
    retrain on unchanged data is no better (improvement 0), so the threshold decides."""
    ws = make_workspace()
    config = str(ws.settings.base_dir / "retrain.toml")
    run_pipeline(ws, ["lightgbm"])
    monkeypatch.setenv("RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT", "0")
    monkeypatch.setenv("RETRAIN_PROMOTION__REQUIRE_SIGNIFICANCE", "false")
    _, doc = run_flow(pipeline, config=config, models=["lightgbm"], force=True)
    assert doc["forced"] is True
    assert doc["models"]["lightgbm"]["relative_improvement"] == 0.0
    assert doc["models"]["lightgbm"]["decision"] == "promoted"
    monkeypatch.setenv("RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT", "0.5")
    _, doc = run_flow(pipeline, config=config, models=["lightgbm"], force=True)
    assert doc["models"]["lightgbm"]["decision"] == "rejected"
    assert "needs +50.00%" in doc["models"]["lightgbm"]["reason"]
