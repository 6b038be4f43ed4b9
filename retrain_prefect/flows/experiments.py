"""A/B tests and rollouts from the Prefect dashboard: small flows that people run from a
deployment's "Run" form, each a thin wrapper around ``retrain.experiments``.

    start-ab-test     split a model's traffic between two versions
    ab-test-status    every active test's numbers, as artifacts (also run by rollout-advance)
    end-ab-test       stop a test; promote its winner
    start-rollout     canary, gradual or immediate rollout of a version
    control-rollout   pause, resume or abort a model's rollout

Each publishes what it did as an artifact with a stable key per model
(``retrain-abtest-<model>``, ``retrain-rollout-<model>``) and announces it as an event on the
model's resource (``retrain.abtest.started|ended``, ``retrain.rollout.started|paused|
resumed|stopped``, ``retrain.model.promoted`` when a winner or an immediate rollout is promoted).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from retrain_prefect.common import notifier, workspace
from retrain_prefect.events import emit
from retrain_prefect.dashboard import artifact_key
from retrain.experiments import ABTestingManager
from retrain.experiments.analysis import jsonable as _jsonable
from retrain.reporting.experiments import schedule_table, status_text


def _manager(config: str | None) -> ABTestingManager:
    ws = workspace(config)
    return ABTestingManager(workspace=ws, notifier=notifier(ws))


def _block(title: str, text: str) -> str:
    return f"# {title}\n\n```\n{text}\n```\n"


def publish_ab_status(document: dict[str, Any]) -> None:
    model = document["model"]
    create_markdown_artifact(
        key=artifact_key("abtest", model),
        markdown=_block(f"{model}: A/B test {document['test_id']} {str(document['status']).upper()}",
                        status_text(document)),
        description=f"{model}: A/B test numbers, lift, always-valid p-value, SRM check")


@flow(name="start-ab-test")
def start_ab_test(model: str, version_b: str, version_a: str | None = None,
                  traffic_split: float | None = None, duration_days: float | None = None,
                  config: str | None = None) -> dict[str, Any]:
    """Send ``traffic_split`` of ``model``'s traffic to ``version_b`` and the rest to
    ``version_a`` (default: production) for ``duration_days`` ([abtest] defaults)."""
    manager = _manager(config)
    test = _jsonable(manager.create_ab_test(model, version_a, version_b, traffic_split=traffic_split,
                                            duration_days=duration_days))
    get_run_logger().info("A/B test %s started: %s vs %s, %.0f%% to B", test["test_id"],
                          test["version_a"], test["version_b"], 100 * test["traffic_split"])
    emit("retrain.abtest.started", model, test)
    publish_ab_status(_jsonable(manager.check_test_status(test["test_id"])))
    return test


@flow(name="ab-test-status")
def ab_test_status(model: str | None = None, config: str | None = None) -> list[dict[str, Any]]:
    """Check every active A/B test (or ``model``'s) and publish its numbers."""
    return check_ab_tests(_manager(config), model)


def check_ab_tests(manager: ABTestingManager, model: str | None = None) -> list[dict[str, Any]]:
    """Check the active A/B tests (a newly declared winner is audited and notified by the
    library) and publish each one's numbers."""
    documents = [_jsonable(manager.check_test_status(t.id))
                 for t in manager.list_tests(model_name=model, active_only=True)]
    for document in documents:
        get_run_logger().info("%s: %s, winner %s", document["test_id"], document["status"],
                              document.get("winner") or "none yet")
        publish_ab_status(document)
    return documents


@flow(name="end-ab-test")
def end_ab_test(test_id: str, promote_winner: bool = True, config: str | None = None) -> dict[str, Any]:
    """Stop the test; with ``promote_winner``, its significant winner becomes production."""
    result = _jsonable(_manager(config).end_test(test_id, promote_winner=promote_winner))
    summary = result["summary"]
    model = summary["model"]
    get_run_logger().info("%s ended %s; winner %s; promoted %s", test_id, result["status"],
                          result["winner"] or "none", result["promoted"] or "nothing")
    payload = {k: v for k, v in result.items() if k != "summary"}
    emit("retrain.abtest.ended", model, {**payload, "model": model, "variants": summary.get("variants"),
                                         "p_value": summary.get("p_value"),
                                         "lift": summary.get("lift")})
    if result["promoted"]:
        emit("retrain.model.promoted", model, {**payload, "model": model, "decision": "promoted",
                                               "version_id": result["promoted"],
                                               "reason": f"won A/B test {test_id}"})
    publish_ab_status({**summary, "status": result["status"]})
    return result


def publish_rollout(model: str, title: str, text: str) -> None:
    create_markdown_artifact(key=artifact_key("rollout", model), markdown=_block(title, text),
                             description=f"{model}: rollout state")


@flow(name="start-rollout")
def start_rollout(model: str, version: str,
                  strategy: Literal["canary", "gradual", "immediate"] | None = None,
                  initial_traffic: float | None = None, increment: float | None = None,
                  increment_interval_hours: float | None = None, steps: int | None = None,
                  config: str | None = None) -> dict[str, Any]:
    """Roll ``version`` out step by step ([rollout] defaults); ``rollout-advance`` moves it on."""
    rollout = _jsonable(_manager(config).create_gradual_rollout(
        model, version, strategy=strategy, initial_traffic=initial_traffic, increment=increment,
        increment_interval_hours=increment_interval_hours, steps=steps))
    get_run_logger().info("%s rollout %s of %s: %s%% first", rollout["strategy"], rollout["rollout_id"],
                          rollout["new_version"], rollout["traffic_percentage"])
    emit("retrain.rollout.started", model, rollout)
    if rollout["status"] == "completed":
        emit("retrain.model.promoted", model, {**rollout, "decision": "promoted",
                                               "version_id": rollout["new_version"],
                                               "reason": "immediate rollout"})
    publish_rollout(model, f"{model}: {rollout['strategy']} rollout {rollout['rollout_id']} started",
                    schedule_table(rollout["schedule"], current_step=rollout["current_step"]))
    return rollout


ROLLOUT_EVENTS = {"pause": "retrain.rollout.paused", "resume": "retrain.rollout.resumed",
                  "abort": "retrain.rollout.stopped"}


@flow(name="control-rollout")
def control_rollout(model: str, action: Literal["pause", "resume", "abort"], reason: str = "",
                    config: str | None = None) -> dict[str, Any]:
    """Pause, resume or abort ``model``'s active rollout (abort: back to 0%, production stays)."""
    manager = _manager(config)
    operation = {"pause": manager.pause_rollout, "resume": manager.resume_rollout,
                 "abort": manager.abort_rollout}[action]
    entry = _jsonable(operation(model, reason=reason))
    get_run_logger().info("%s %s: %s%% to %s", entry["rollout_id"], entry["action"],
                          entry["traffic_percentage"], entry["version"])
    emit(ROLLOUT_EVENTS[action], model, entry)
    publish_rollout(model, f"{model}: rollout {entry['rollout_id']} {entry['action'].upper()}",
                    status_text(_jsonable(manager.rollout_status(model))))
    return entry
