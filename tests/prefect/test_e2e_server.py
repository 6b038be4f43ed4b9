"""End to end against a real Prefect server: deployments, schedules, automations, a worker.

One ``prefect server start`` (SQLite in a temporary PREFECT_HOME) for the module: the work
pool is created, ``prefect deploy --all`` applies prefect.yaml, ``python -m
deployments.automations`` the automations (twice, and ``prefect deploy`` again after: nothing
is duplicated), and a process worker runs the flow runs. Then the issue's five checks:

1. ``prefect deployment run 'retraining-pipeline/monthly'`` completes; production versions exist;
2. a ``retrain.drift.detected`` event for a model starts a pipeline run for that model with
   reason ``drift`` through the automation, and it completes;
3. the monthly schedule has the configured cron and timezone, and the scheduler has created
   the run for the next 1st of the month;
4. a failed run calls the failure webhook (a real HTTP receiver on loopback), and the
   failure-alert deployment, run by its automation, emails it (a real SMTP server on loopback);
5. two drift events for one model in quick succession give two runs that never overlap.

4b. a run whose heartbeats stop is marked Crashed; the webhook and the email report it too.

PostgreSQL: ``prefect deploy --all`` and the automations against a server backed by a
throwaway PostgreSQL database (skipped, with the reason, when PostgreSQL does not answer).
Everything started is stopped afterwards, also when a test fails. The first tests need no
server: prefect.yaml and the automations in code agree, and the deploy step reads the
schedule from retrain.toml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from prefect_server import (PROJECT_DIR, PrefectServer, WebhookReceiver, artifacts_of, prefect_server,
                            process_worker, tail)
from retrain.demo import append_drifted_month, write_workspace
from smtp_server import Received, SmtpServer
from retrain.workspace import Workspace

slow = pytest.mark.slow

POOL = "retrain-pool"
PIPELINE = "retraining-pipeline/monthly"
DRIFT_CHECK = "drift-check/daily"
FAILURE_ALERT = "failure-alert/notify"
ROLLOUT_ADVANCE = "rollout-advance/hourly"
# Run from the dashboard's form: rollback, A/B tests and rollouts.
MANUAL = {f"{flow}/manual" for flow in ("rollback-model", "start-ab-test", "ab-test-status",
                                        "end-ab-test", "start-rollout", "control-rollout", "backtest")}
MODELS = ("random_forest", "lightgbm")
TIMEZONE = "Europe/Amsterdam"  # not the default, to show that it is taken from the config
AUTOMATIONS = ("retrain on drift", "retrain on volume", "retrain: mark runs without heartbeats crashed",
               "retrain: notify on failed or crashed run", "retrain: email on failed or crashed run")
RECIPIENTS = ["ml-team@example.com"]
RUN_TIMEOUT = 240


@dataclass
class Stack:
    server: PrefectServer
    client: object  # SyncPrefectClient of the server
    config: Path
    hook: WebhookReceiver
    smtp: SmtpServer
    worker_log: Path
    automation_counts: dict[str, dict[str, int]]

    def fail_note(self) -> str:
        return (f"\n--- worker log ---\n{tail(self.worker_log, 60)}"
                f"\n--- server log ---\n{tail(self.server.log, 30)}")


def apply_automations(server: PrefectServer, webhook_url: str) -> str:
    run = subprocess.run([sys.executable, "-m", "deployments.automations", "--webhook-url", webhook_url],
                         cwd=PROJECT_DIR, env=server.env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def automation_counts(client) -> dict[str, int]:
    names = [a.name for a in client.read_automations()]
    return {name: names.count(name) for name in sorted(set(names))}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from prefect.client.orchestration import SyncPrefectClient

    tmp = tmp_path_factory.mktemp("e2e")
    config = write_workspace(tmp / "ws", months=4, rows_per_month=900, trees=40)
    with ExitStack() as stack:
        hook = stack.enter_context(WebhookReceiver())
        smtp = stack.enter_context(SmtpServer())
        # Every notification of the flows is mailed to it (the failure alert is checked).
        config.write_text(config.read_text() + f'\n[notifications]\nsmtp_host = "127.0.0.1"\n'
                          f'smtp_port = {smtp.port}\nemail_recipients = {json.dumps(RECIPIENTS)}\n')
        server = stack.enter_context(prefect_server(tmp / "prefect-home"))
        client = stack.enter_context(SyncPrefectClient(server.url))
        server.cli("work-pool", "create", POOL, "--type", "process")
        deploy_env = {"RETRAIN_CONFIG": str(config), "RETRAIN_SCHEDULE__TIMEZONE": TIMEZONE}
        counts = {}
        server.cli("deploy", "--all", **deploy_env)
        counts["deploy"] = automation_counts(client)
        apply_automations(server, hook.url)
        counts["apply"] = automation_counts(client)
        again = apply_automations(server, hook.url)
        counts["apply again"] = automation_counts(client)
        assert "unchanged" in again
        server.cli("deploy", "--all", **deploy_env)
        counts["deploy again"] = automation_counts(client)
        worker_log = tmp / "worker.log"
        stack.enter_context(process_worker(server, POOL, worker_log))
        yield Stack(server, client, config, hook, smtp, worker_log, counts)


# Reading runs back ----------------------------------------------------------------------

def deployment_runs(client, deployment: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    dep = client.read_deployment_by_name(deployment)
    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                                 limit=200)


def wait_for_runs(stack: Stack, predicate, count: int, timeout: float = 60) -> list:
    """``count`` runs of the pipeline deployment for which ``predicate(run)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in deployment_runs(stack.client, PIPELINE) if predicate(r)]
        if len(runs) >= count:
            return sorted(runs, key=lambda r: r.created)
        assert time.monotonic() < deadline, (
            f"{len(runs)} of {count} runs appeared within {timeout}s" + stack.fail_note())
        time.sleep(0.5)


def wait_until_final(stack: Stack, run_id: UUID, timeout: float = RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        run = stack.client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        assert time.monotonic() < deadline, (
            f"flow run {run.name} still {run.state_name} after {timeout}s" + stack.fail_note())
        time.sleep(1)


def assert_completed(stack: Stack, run) -> None:
    assert run.state_type.value == "COMPLETED", (
        f"{run.name}: {run.state_name}: {run.state.message}" + stack.fail_note())


def emit_drift_event(stack: Stack, model: str) -> None:
    stack.server.cli("event", "emit", "retrain.drift.detected",
                     "--resource-id", f"retrain.model.{model}",
                     "--resource", f"prefect.resource.name={model}",
                     "--payload", '{"detected": true, "source": "test"}')


def is_event_run(model: str, reason: str, after: datetime):
    def predicate(run) -> bool:
        return (run.parameters.get("models") == [model] and run.parameters.get("reason") == reason
                and run.created >= after)
    return predicate


def wait_for_mail(stack: Stack, subject: str, timeout: float = 90) -> Received:
    """The first mail with ``subject`` the SMTP server received."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in stack.smtp.received if m.subject == subject]
        if found:
            return found[0]
        assert time.monotonic() < deadline, (
            f"no mail {subject!r} within {timeout}s; received {[m.subject for m in stack.smtp.received]}"
            + stack.fail_note())
        time.sleep(0.5)


def assert_alert_run_completed(stack: Stack, failed_run_id: UUID) -> None:
    """The failure-alert run for ``failed_run_id`` was started by its automation and completed."""
    [alert] = [r for r in deployment_runs(stack.client, FAILURE_ALERT)
               if r.parameters.get("flow_run_id") == str(failed_run_id)]
    assert alert.created_by is not None and alert.created_by.type == "AUTOMATION"
    assert alert.created_by.display_value == "retrain: email on failed or crashed run"
    assert_completed(stack, wait_until_final(stack, alert.id))


def production(config: Path) -> dict[str, str | None]:
    registry = Workspace.open(config).registry
    return {n: (v.version_id if (v := registry.production_version(n)) else None) for n in MODELS}


def drift_once(config: Path) -> None:
    """Append the drifted month once (later tests reuse it)."""
    data = config.parent / "data"
    if len(list(data.glob("*.parquet"))) == 4:
        append_drifted_month(config.parent, index=4, rows=2000)


# Without a server -----------------------------------------------------------------------

def test_prefect_yaml_declares_the_triggers_defined_in_code():
    import yaml
    from pydantic import TypeAdapter
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from retrain_prefect.automations import pipeline_triggers

    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    monthly = deployments["monthly"]
    adapter = TypeAdapter(DeploymentTriggerTypes)

    def comparable(trigger) -> dict:
        data = trigger.model_dump(mode="json")
        return {k: sorted(v) if isinstance(v, list) else v for k, v in data.items()}

    assert ([comparable(adapter.validate_python(t)) for t in monthly["triggers"]]
            == [comparable(t) for t in pipeline_triggers()])
    assert monthly["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert monthly["entrypoint"] == "flows/pipeline.py:retraining_pipeline"
    assert monthly["parameters"] == {"reason": "schedule"}
    assert deployments["daily"]["entrypoint"] == "flows/drift_check.py:drift_check"
    assert {d["work_pool"]["name"] for d in deployments.values()} == {POOL}


@pytest.mark.parametrize("resource", [
    {"prefect.resource.id": "retrain.model.lightgbm", "prefect.resource.name": "lightgbm"},
    {"prefect.resource.id": "retrain.model.lightgbm"},  # e.g. emitted by hand without a name
])
def test_the_triggered_run_gets_the_model_of_the_event(resource):
    """The trigger's parameters rendered as the server renders them when it fires."""
    import copy
    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate
    from retrain_prefect.automations import pipeline_triggers

    event = ReceivedEvent(occurred=datetime.now(timezone.utc), event="retrain.drift.detected",
                          resource=resource, id="0194fa58-8ac3-7a08-8a50-3c3a4d3c2a9a")
    rendered = {}
    for trigger in pipeline_triggers():
        parameters = copy.deepcopy(trigger.parameters)
        RunDeployment._upgrade_v1_templates(parameters)
        RunDeployment._register_filters_if_needed()
        rendered[trigger.name] = hydrate(parameters, HydrationContext(
            render_jinja=True, jinja_context={"event": event}, raise_on_error=True))
    assert rendered == {"retrain on drift": {"models": ["lightgbm"], "reason": "drift"},
                        "retrain on volume": {"models": ["lightgbm"], "reason": "volume"}}


def test_the_deploy_step_reads_the_schedule_from_retrain_toml(tmp_path, monkeypatch):
    from deployments.steps import retrain_settings
    from retrain.errors import ConfigError

    for key in [k for k in os.environ if k.startswith("RETRAIN")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    default = retrain_settings()  # no retrain.toml here: the default schedule, no RETRAIN_CONFIG
    assert (default["cron"], default["timezone"]) == ("0 3 1 * *", "UTC")
    assert "RETRAIN_CONFIG" not in default["env"] and default["project_dir"] == str(PROJECT_DIR)

    config = write_workspace(tmp_path / "ws", months=1, rows_per_month=50, trees=5)
    config.write_text(config.read_text() + '\n[schedule]\ncron = "30 4 2 * *"\ntimezone = "Asia/Tokyo"\n')
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    configured = retrain_settings()
    assert (configured["cron"], configured["timezone"]) == ("30 4 2 * *", "Asia/Tokyo")
    assert configured["env"]["RETRAIN_CONFIG"] == str(config)
    monkeypatch.setenv("RETRAIN_SCHEDULE__TIMEZONE", "Europe/Paris")
    assert retrain_settings()["timezone"] == "Europe/Paris"
    with pytest.raises(ConfigError):
        retrain_settings(str(tmp_path / "missing.toml"))


def test_artifact_keys_are_stable_and_valid():
    from retrain_prefect.dashboard import artifact_key
    assert artifact_key("summary", "random_forest") == "retrain-summary-random-forest"
    assert artifact_key("metrics", "LightGBM v2") == "retrain-metrics-lightgbm-v2"
    assert all(re.fullmatch(r"[a-z0-9-]+", artifact_key("report", n)) for n in ("a_b", "X.Y", "__"))


# The checks -------------------------------------------------------------------------------

@slow
def test_deploying_and_applying_automations_twice_duplicates_nothing(stack):
    expected_after_deploy = {"retrain on drift": 1, "retrain on volume": 1}
    assert stack.automation_counts["deploy"] == expected_after_deploy
    for step in ("apply", "apply again", "deploy again"):
        assert stack.automation_counts[step] == {name: 1 for name in AUTOMATIONS}, step
    deployments = {f"{stack.client.read_flow(d.flow_id).name}/{d.name}": d
                   for d in stack.client.read_deployments()}
    assert set(deployments) == {PIPELINE, DRIFT_CHECK, FAILURE_ALERT, ROLLOUT_ADVANCE, *MANUAL}
    assert {d.work_pool_name for d in deployments.values()} == {POOL}
    rollout = deployments[ROLLOUT_ADVANCE]
    assert [s.schedule.cron for s in rollout.schedules] == ["0 * * * *"]
    assert rollout.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert all(not deployments[name].schedules for name in MANUAL)
    pipeline = deployments[PIPELINE]
    assert pipeline.work_pool_name == POOL and deployments[DRIFT_CHECK].work_pool_name == POOL
    assert pipeline.global_concurrency_limit.limit == 1
    assert pipeline.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert pipeline.job_variables["env"]["RETRAIN_CONFIG"] == str(stack.config)


@slow
def test_1_monthly_deployment_run_completes_and_promotes(stack):
    run = stack.server.cli("deployment", "run", PIPELINE)
    run_id = UUID(re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1))
    final = wait_until_final(stack, run_id)
    assert_completed(stack, final)
    assert final.parameters["reason"] == "schedule"
    assert {"model:random_forest", "model:lightgbm", "reason:schedule"} <= set(final.tags)
    assert production(stack.config) == {n: f"{n}-v1" for n in MODELS}

    artifacts = artifacts_of(stack.client, run_id)
    for key in ("retrain-summary-random-forest", "retrain-summary-lightgbm",
                "retrain-metrics-random-forest", "retrain-metrics-lightgbm",
                "retrain-report-lightgbm", "retraining-summary"):
        assert key in artifacts, sorted(artifacts)
    summary = artifacts["retrain-summary-lightgbm"].data
    assert summary.startswith("# lightgbm: BOOTSTRAPPED") and "lightgbm-v1" in summary
    assert "## Reports" in summary and "file://" in summary
    metrics = artifacts["retrain-metrics-lightgbm"]
    assert metrics.type == "table" and '"roc_auc"' in metrics.data

    # Through the REST API, as the dashboard reads them: the parent run's own artifacts name
    # it; its steps' runs are named after the step; the library's INFO lines (each candidate,
    # each decision) are in the runs' logs, under a worker.
    own = artifacts_of(stack.client, run_id, subflows=False)
    assert {"retraining-summary", "retrain-summary-lightgbm", "retrain-metrics-lightgbm"} <= set(own)
    assert final.name in own["retraining-summary"].description
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    steps = stack.client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])))
    assert {r.name for r in steps} >= {f"{step} · random_forest, lightgbm" for step in (
        "check-drift", "retrain-models", "evaluate-models", "deploy-models", "send-notifications")}
    expected = ("training lightgbm (lightgbm) on ", "evaluated lightgbm-v1: roc_auc",
                "promotion of lightgbm: lightgbm-v1 (was none)")
    messages = logs_of(stack.client, [run_id, *(r.id for r in steps)], expected)
    for prefix in expected:
        assert any(m.startswith(prefix) for m in messages), (prefix, messages[:40])


def logs_of(client, run_ids: list[UUID], expected: tuple[str, ...], timeout: float = 60) -> list[str]:
    """The log messages of the runs, once a line starts with each of ``expected`` (or the
    timeout passed): a worker's flow process sends them in batches."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    deadline = time.monotonic() + timeout
    while True:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
        messages = [entry.message for entry in logs]
        found = all(any(m.startswith(p) for m in messages) for p in expected)
        if found or time.monotonic() > deadline:
            return messages
        time.sleep(1)


@slow
def test_2_drift_event_runs_the_pipeline_for_that_model(stack):
    drift_once(stack.config)
    before = production(stack.config)
    sent = datetime.now(timezone.utc) - timedelta(seconds=1)
    emit_drift_event(stack, "lightgbm")
    (run,) = wait_for_runs(stack, is_event_run("lightgbm", "drift", sent), 1)
    assert run.created_by is not None and run.created_by.type == "AUTOMATION"
    assert run.created_by.display_value == "retrain on drift"
    final = wait_until_final(stack, run.id)
    assert_completed(stack, final)
    assert {"model:lightgbm", "reason:drift"} <= set(final.tags)
    assert "random_forest" not in " ".join(final.tags)
    assert final.name == "lightgbm (drift)"

    registry = Workspace.open(stack.config).registry
    versions = {v.version_id: v.status for v in registry.versions("lightgbm")}
    assert "lightgbm-v2" in versions  # retrained on the drifted data, then decided
    if before["random_forest"]:
        assert production(stack.config)["random_forest"] == before["random_forest"]
    summary = artifacts_of(stack.client, run.id)["retrain-summary-lightgbm"].data
    assert "Run reason `drift`" in summary and "| drift |" in summary


@slow
def test_3_monthly_schedule_and_its_next_run(stack):
    from prefect.client.schemas.objects import StateType

    pipeline = stack.client.read_deployment_by_name(PIPELINE)
    (schedule,) = pipeline.schedules
    assert schedule.active
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 1 * *", TIMEZONE)

    local_now = datetime.now(ZoneInfo(TIMEZONE))
    expected = datetime(local_now.year, local_now.month, 1, 3, tzinfo=ZoneInfo(TIMEZONE))
    if expected <= local_now:
        year, month = divmod(local_now.month, 12)
        expected = datetime(local_now.year + year, month + 1, 1, 3, tzinfo=ZoneInfo(TIMEZONE))
    deadline = time.monotonic() + 60
    while True:
        scheduled = [r for r in deployment_runs(stack.client, PIPELINE)
                     if r.state_type == StateType.SCHEDULED and r.auto_scheduled]
        if scheduled or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert scheduled, "the scheduler created no run" + stack.fail_note()
    first = min(scheduled, key=lambda r: r.expected_start_time)
    assert first.expected_start_time == expected
    assert first.parameters["reason"] == "schedule"


@slow
def test_4a_a_failed_run_calls_the_failure_webhook_and_is_emailed(stack):
    """A run that fails (an unknown model: a user's mistake) calls the webhook and, through
    the failure-alert deployment, sends an email."""
    drift_check = stack.client.read_deployment_by_name(DRIFT_CHECK)
    run = stack.client.create_flow_run_from_deployment(drift_check.id,
                                                       parameters={"models": ["no_such_model"]})
    final = wait_until_final(stack, run.id)
    assert final.state_type.value == "FAILED", final.state
    body = stack.hook.wait_for(lambda b: b.get("flow_run_id") == str(run.id), timeout=60)
    assert body is not None, f"no webhook call for the failed run; received {stack.hook.requests}" + stack.fail_note()
    assert body["event"] == "retrain.run.failed" and body["state"] == "Failed"
    assert body["flow"] == "drift-check" and body["flow_run"] == final.name
    assert "no_such_model" in body["message"]
    assert body["text"].startswith(f"retrain: drift-check run {final.name} Failed: ")
    assert body["parameters"] == {"models": ["no_such_model"]}

    mail = wait_for_mail(stack, f"[retrain] drift-check run {final.name} failed")
    assert mail.recipients == RECIPIENTS and mail.message["X-Retrain-Kind"] == "failure"
    text = mail.part("text/plain")
    assert f"The drift-check run {final.name} ended in state Failed." in text
    assert "no_such_model" in text and str(run.id) in text
    assert_alert_run_completed(stack, run.id)


def registrations(config: Path, model: str) -> int:
    return sum(e.action == "registered" for e in Workspace.open(config).registry.history(model))


@slow
def test_4b_a_run_whose_heartbeats_stop_is_crashed_and_reported(stack):
    """A run whose process vanished (a heartbeat, then silence) is marked Crashed by the
    crash-detection automation, and the failure automation reports it."""
    from retrain_prefect.automations import apply
    from retrain_prefect.flows.drift_check import drift_check
    from prefect.states import Running

    run = stack.client.create_flow_run(drift_check, state=Running())
    apply(client=stack.client, crashed_after=timedelta(seconds=10))
    try:
        stack.server.cli("event", "emit", "prefect.flow-run.heartbeat",
                         "--resource-id", f"prefect.flow-run.{run.id}",
                         "--resource", f"prefect.resource.name={run.name}",
                         "--related", json.dumps([{"prefect.resource.id": f"prefect.flow.{run.flow_id}",
                                                   "prefect.resource.role": "flow",
                                                   "prefect.resource.name": "drift-check"}]))
        body = stack.hook.wait_for(lambda b: b.get("flow_run_id") == str(run.id), timeout=60)
    finally:
        apply(client=stack.client)  # back to the default, before real runs start again
    assert body is not None, f"no webhook call for the silent run" + stack.fail_note()
    assert body["state"] == "Crashed" and body["event"] == "retrain.run.crashed"
    assert "No heartbeat for 10s" in body["message"]
    assert stack.client.read_flow_run(run.id).state_type.value == "CRASHED"
    # The email too: the failure-alert flow runs in a process of its own, so a run whose
    # process is gone is reported all the same.
    text = wait_for_mail(stack, f"[retrain] drift-check run {run.name} crashed").part("text/plain")
    assert f"The drift-check run {run.name} ended in state Crashed." in text
    assert "No heartbeat for 10s" in text


@slow
def test_5_two_drift_events_for_one_model_never_overlap(stack):
    drift_once(stack.config)
    registered_before = registrations(stack.config, "random_forest")
    sent = datetime.now(timezone.utc) - timedelta(seconds=1)
    emit_drift_event(stack, "random_forest")
    emit_drift_event(stack, "random_forest")
    first, second = wait_for_runs(stack, is_event_run("random_forest", "drift", sent), 2)
    runs = [wait_until_final(stack, r.id, timeout=2 * RUN_TIMEOUT) for r in (first, second)]
    for run in runs:
        assert_completed(stack, run)
    earlier, later = sorted(runs, key=lambda r: r.start_time)
    assert earlier.end_time <= later.start_time, (
        f"{earlier.name} ran {earlier.start_time}..{earlier.end_time}, "
        f"{later.name} {later.start_time}..{later.end_time}")
    # The later run waited for the deployment's concurrency slot rather than by chance.
    waited = {s.name for s in stack.client.read_flow_run_states(later.id)}
    assert "AwaitingConcurrencySlot" in waited, waited

    # Each run re-checked the triggers against production as the run before it left it: the
    # first retrained; the second retrained only if the first was not promoted.
    statuses = {v.version_id: v.status for v in Workspace.open(stack.config).registry.versions("random_forest")}
    first_candidate = f"random_forest-v{registered_before + 1}"
    expected = 1 if statuses[first_candidate] == "production" else 2
    assert registrations(stack.config, "random_forest") - registered_before == expected, statuses


# PostgreSQL ---------------------------------------------------------------------------------

@slow
@pytest.mark.postgres
def test_prefect_deploy_against_a_postgresql_backed_server(tmp_path):
    from pg import temporary_database
    from prefect.client.orchestration import SyncPrefectClient

    config = write_workspace(tmp_path / "ws", months=2, rows_per_month=300, trees=10)
    with temporary_database(prefix="retrain_prefect") as url, WebhookReceiver() as hook:
        asyncpg_url = url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
        with prefect_server(tmp_path / "prefect-home", database_url=asyncpg_url) as server, \
                SyncPrefectClient(server.url) as client:
            server.cli("work-pool", "create", POOL, "--type", "process")
            server.cli("deploy", "--all", RETRAIN_CONFIG=str(config))
            apply_automations(server, hook.url)
            assert automation_counts(client) == {name: 1 for name in AUTOMATIONS}
            pipeline = client.read_deployment_by_name(PIPELINE)
            assert [(s.schedule.cron, s.schedule.timezone) for s in pipeline.schedules] == [
                ("0 3 1 * *", "UTC")]
            assert client.read_deployment_by_name(DRIFT_CHECK).work_pool_name == POOL
