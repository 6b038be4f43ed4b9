"""Notifications through a real SMTP server on loopback: order, content, nothing lost."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from retrain.notify import NotificationService
from retrain.notify.channels import message_id
from retrain.pipeline import run_pipeline
from retrain.promotion import rollback_model
from retrain.registry import Registry
from retrain.registry.tables import Notification
from smoke_samples import tamper_smoke_sample
from smtp_server import SmtpServer, free_port

RECIPIENTS = ["ml-team@example.com", "ops@example.com"]


def mail_to(ws, port: int) -> None:
    n = ws.settings.notifications
    n.smtp_host, n.smtp_port, n.email_recipients = "127.0.0.1", port, RECIPIENTS
    n.retry_backoff_seconds = 0


def production_at_arrival(ws):
    """An SMTP handler hook: the production version of the mail's model when it arrives."""
    registry = Registry.from_settings(ws.settings)

    def observe(msg):
        subject = str(msg["Subject"]).strip()
        model = subject.split("] ", 1)[1].split(":", 1)[0] if "] " in subject else None
        if model in ws.settings.models:
            v = registry.production_version(model)
            return v.version_id if v else None
        return None

    return observe


def test_notice_goes_out_before_the_pointer_moves(workspace, drift_month):
    port = free_port()
    mail_to(workspace, port)
    with SmtpServer(port, on_receive=production_at_arrival(workspace)) as server:
        run_pipeline(workspace, models=["lightgbm"])
        drift_month(workspace)
        doc = run_pipeline(workspace, models=["lightgbm"], reason="schedule")
    assert doc.models["lightgbm"].decision == "promoted"
    kinds = [(r.message["X-Retrain-Kind"], r.observed) for r in server.received]
    assert kinds == [
        ("pending_promotion", None),          # bootstrap notice: nothing in production yet
        ("promotion", "lightgbm-v1"),
        ("retraining_summary", None),
        ("pending_promotion", "lightgbm-v1"),  # the notice arrives while v1 still serves
        ("promotion", "lightgbm-v2"),
        ("drift_alert", None),
        ("retraining_summary", None),
    ]
    notice = server.received[3]
    assert notice.subject == "[retrain] lightgbm: lightgbm-v2 will replace lightgbm-v1 in production"
    assert sorted(notice.recipients) == sorted(RECIPIENTS)
    assert "roc_auc" in notice.part("text/plain") and "<table" in notice.part("text/html")
    promotion = server.received[4]
    assert promotion.subject.startswith("[retrain] lightgbm: lightgbm-v2 promoted to production (+")
    drift = server.received[5]
    assert "debt_to_income" in drift.part("text/plain")
    summary = server.received[6]
    assert "1 promoted of 1" in summary.subject and "PROMOTED" in summary.part("text/plain")


def test_rejection_mail(workspace):
    port = free_port()
    mail_to(workspace, port)
    with SmtpServer(port) as server:
        run_pipeline(workspace, models=["lightgbm"])
        run_pipeline(workspace, models=["lightgbm"], force=True)
    subjects = [r.subject for r in server.received]
    assert "[retrain] lightgbm: lightgbm-v2 rejected" in subjects
    body = next(r for r in server.received if r.subject.endswith("rejected")).part("text/plain")
    assert "production is unchanged" in body and "needs +5.00%" in body


def test_mail_server_down_then_up_delivers_everything_once(workspace, drift_month):
    port = free_port()  # nothing listens here yet
    mail_to(workspace, port)
    doc = run_pipeline(workspace, models=["lightgbm"])  # must not fail
    assert doc.success and doc.models["lightgbm"].decision == "bootstrapped"
    service = NotificationService(workspace=workspace)
    pending = service.outbox.messages(status="pending")
    assert [m.kind for m in reversed(pending)] == ["pending_promotion", "promotion", "retraining_summary"]
    assert all(m.attempts >= 1 and "Connection refused" in m.last_error for m in pending[-1:])
    with SmtpServer(port) as server:
        counts = service.flush(now=True)
        again = service.flush(now=True)
    assert counts["sent"] == 3 and again["sent"] == 0
    assert [r.message["X-Retrain-Kind"] for r in server.received] == [
        "pending_promotion", "promotion", "retraining_summary"]
    ids = [r.message["X-Retrain-Notification-Id"] for r in server.received]
    assert len(set(ids)) == 3
    assert service.outbox.messages(status="pending") == []


def test_the_next_run_delivers_what_an_earlier_run_could_not(workspace):
    port = free_port()
    mail_to(workspace, port)
    run_pipeline(workspace, models=["lightgbm"])
    with SmtpServer(port) as server:
        run_pipeline(workspace, models=["lightgbm"])  # skips, but flushes the outbox first
    kinds = [r.message["X-Retrain-Kind"] for r in server.received]
    assert kinds == ["pending_promotion", "promotion", "retraining_summary", "retraining_summary"]


def test_attempts_run_out_and_can_be_retried(workspace):
    mail_to(workspace, free_port())
    workspace.settings.notifications.max_attempts = 2
    service = NotificationService(workspace=workspace)
    [first] = service.send_drift_alert({"lightgbm": {"detected": True, "drifted_features": ["x"], "share": 1.0}})
    service.flush(now=True)
    [row] = service.outbox.messages()
    assert row.id == first and row.status == "failed" and row.attempts == 2
    assert service.outbox.retry_failed() == 1
    assert service.outbox.messages()[0].status == "pending"


def test_seed_api_and_password_from_env_never_logged(workspace, monkeypatch, caplog):
    port = free_port()
    mail_to(workspace, port)
    monkeypatch.setenv("RETRAIN_SMTP_PASSWORD", "s3cret-value")
    with SmtpServer(port) as server:
        notifier = NotificationService(email_recipients=["a@example.com"], workspace=workspace)
        notifier.send_promotion_notification(model_name="random_forest", version_id="v20250126_new",
                                             improvement_percent=7.5,
                                             new_metrics={"roc_auc": 0.87, "accuracy": 0.82})
        notifier.send_retraining_summary(drift_detected=True, volume_threshold_met=False,
                                         deployment_results={"models": {}})
        notifier.send_drift_alert({"detected": True, "drifted_features": ["income"], "share": 0.5})
    subjects = [r.subject for r in server.received]
    assert subjects[0] == "[retrain] random_forest: v20250126_new promoted to production (+7.5%)"
    assert "0.8700" in server.received[0].part("text/plain")
    assert [r.recipients for r in server.received] == [["a@example.com"]] * 3
    assert "s3cret-value" not in caplog.text


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_channel_posts_slack_compatible_json(workspace):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        workspace.settings.notifications.webhook_url = f"http://127.0.0.1:{server.server_port}/hook"
        NotificationService(workspace=workspace).send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2",
                                                               "smoke check failed")
    finally:
        server.shutdown()
    [body] = _Hook.received
    assert body["text"].startswith("*[retrain] lightgbm: rolled back to lightgbm-v1*")
    assert body["retrain"]["kind"] == "rollback" and body["retrain"]["rolled_back_from"] == "lightgbm-v2"


def test_rollback_by_command_is_audited_and_notified(workspace, drift_month):
    port = free_port()
    mail_to(workspace, port)
    with SmtpServer(port) as server:
        run_pipeline(workspace, models=["lightgbm"])
        drift_month(workspace)
        run_pipeline(workspace, models=["lightgbm"])
        before = len(server.received)
        result = rollback_model(workspace, "lightgbm", reason="complaints from the risk team")
    assert result == {"model": "lightgbm", "production_version": "lightgbm-v1",
                      "rolled_back_from": "lightgbm-v2", "reason": "complaints from the risk team",
                      "outcome": "switched"}
    assert workspace.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    last = workspace.registry.history("lightgbm")[-1]
    assert (last.action, last.version_id, last.reason) == ("rolled-back", "lightgbm-v1",
                                                           "complaints from the risk team")
    # A rollback is a production change like any other: announced before and after.
    assert [r.subject for r in server.received[before:]] == [
        "[retrain] lightgbm: lightgbm-v1 will replace lightgbm-v2 in production",
        "[retrain] lightgbm: rolled back to lightgbm-v1"]
    assert "complaints from the risk team" in server.received[-1].part("text/plain")


def _candidate_evaluation(workspace, reason: str = "drift"):
    from retrain.evaluation.evaluate import evaluate_candidates
    from retrain.training import load_training_data
    from retrain.training.candidates import train_candidates

    data = load_training_data(workspace)
    return evaluate_candidates(workspace, train_candidates(workspace, ["lightgbm"], data, reason),
                               data)["lightgbm"]


def test_failed_smoke_check_rolls_back(workspace, drift_month):
    """The deployed artifact does not predict what was evaluated: the smoke check catches it,
    production goes back to the previous version through the same switch (announced before
    and after), and everyone is told."""
    from retrain.promotion.decisions import decide_all

    port = free_port()
    mail_to(workspace, port)
    with SmtpServer(port) as server:
        run_pipeline(workspace, models=["lightgbm"])
        drift_month(workspace)
        evaluation = tamper_smoke_sample(workspace, _candidate_evaluation(workspace))
        before = len(server.received)
        decision = decide_all(workspace, {"lightgbm": evaluation})["lightgbm"]
    assert decision.decision == "rolled-back"
    assert "predicts differently from the evaluated model on 200 of 200" in decision.reason
    assert workspace.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    assert workspace.registry.get_version("lightgbm-v2").status == "archived"
    actions = [e.action for e in workspace.registry.history("lightgbm")][-4:]
    assert actions == ["archived", "promoted", "archived", "rolled-back"]
    assert [r.subject for r in server.received[before:]] == [
        "[retrain] lightgbm: lightgbm-v2 will replace lightgbm-v1 in production",
        "[retrain] lightgbm: lightgbm-v1 will replace lightgbm-v2 in production",
        "[retrain] lightgbm: rolled back to lightgbm-v1"]
    assert "smoke check after promotion failed" in server.received[-1].part("text/plain")


def test_a_failed_smoke_check_withdraws_when_the_previous_version_is_broken(workspace,
                                                                            drift_month):
    """Rolling back to v1 is refused (its artifact no longer matches its sha256): the failed
    v2 is withdrawn instead of staying in production, and its held notice is cancelled."""
    from retrain.promotion.decisions import decide_all

    run_pipeline(workspace, models=["lightgbm"])
    drift_month(workspace)
    evaluation = tamper_smoke_sample(workspace, _candidate_evaluation(workspace))
    registry = workspace.registry
    path = registry.artifact_file(registry.get_version("lightgbm-v1"))
    path.write_bytes(path.read_bytes()[:-10])
    decision = decide_all(workspace, {"lightgbm": evaluation})["lightgbm"]
    assert decision.decision == "rolled-back" and "smoke check" in decision.reason
    assert registry.production_version("lightgbm") is None
    assert registry.get_version("lightgbm-v2").status == "rejected"
    assert [e.action for e in registry.history("lightgbm")][-3:] == [
        "archived", "promoted", "withdrawn"]
    rows = [(m.kind, m.status) for m in reversed(NotificationService(workspace=workspace).outbox.messages())]
    assert rows[-4:] == [("pending_promotion", "sent"), ("promotion", "cancelled"),
                         ("pending_promotion", "sent"), ("rollback", "sent")]


def test_a_first_version_that_fails_its_smoke_check_is_withdrawn(workspace):
    from retrain.promotion.decisions import decide_all

    evaluation = tamper_smoke_sample(workspace, _candidate_evaluation(workspace, "manual"))
    decision = decide_all(workspace, {"lightgbm": evaluation})["lightgbm"]
    assert decision.decision == "rolled-back" and "smoke check" in decision.reason
    assert workspace.registry.production_version("lightgbm") is None
    assert workspace.registry.history("lightgbm")[-1].action == "withdrawn"
    rows = [(m.kind, m.status) for m in reversed(NotificationService(workspace=workspace).outbox.messages())]
    # The promotion notice was held for the smoke check, which failed: it is never sent.
    assert rows == [("pending_promotion", "sent"), ("promotion", "cancelled"),
                    ("pending_promotion", "sent"), ("rollback", "sent")]


def test_a_corrupt_artifact_is_refused_before_anything_is_announced(workspace):
    from retrain.promotion.decisions import decide_all

    evaluation = _candidate_evaluation(workspace, "manual")
    path = workspace.registry.artifact_file(workspace.registry.get_version("lightgbm-v1"))
    path.write_bytes(path.read_bytes()[:-10])
    decision = decide_all(workspace, {"lightgbm": evaluation})["lightgbm"]
    assert decision.decision == "failed" and "sha256" in decision.reason
    assert workspace.registry.production_version("lightgbm") is None
    assert workspace.registry.get_version("lightgbm-v1").status == "candidate"
    assert NotificationService(workspace=workspace).outbox.messages() == []


def test_notify_command_flushes_the_outbox(workspace, capsys):
    from retrain.cli import main

    port = free_port()
    mail_to(workspace, port)
    config = str(workspace.settings.base_dir / "retrain.toml")
    toml = workspace.settings.base_dir / "retrain.toml"
    toml.write_text(toml.read_text() + f'\n[notifications]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
                    f'email_recipients = ["ml-team@example.com"]\n')
    NotificationService(workspace=workspace).send_drift_alert(
        {"lightgbm": {"detected": True, "drifted_features": ["income"], "share": 1.0}})
    assert main(["--config", config, "notify", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(n["kind"], n["status"]) for n in listed["notifications"]] == [("drift_alert", "pending")]
    with SmtpServer(port) as server:
        assert main(["--config", config, "notify", "--flush"]) == 0
    out = capsys.readouterr().out
    assert "delivered 1" in out and "sent" in out
    assert [r.message["X-Retrain-Kind"] for r in server.received] == ["drift_alert"]


def test_a_row_in_backoff_holds_back_the_later_rows_of_its_model(workspace):
    """SMTP down at the pending notice and back a moment later: the promotion notice written
    after it waits for it (per model, the order they were written in), while another model's
    notice is not held up."""
    port = free_port()
    mail_to(workspace, port)
    workspace.settings.notifications.retry_backoff_seconds = 3600  # the first stays in backoff
    service = NotificationService(workspace=workspace)
    [pending] = service.send_pending_promotion("lightgbm", "lightgbm-v2", "lightgbm-v1", "better")
    with SmtpServer(port) as server:
        service.send_promotion_notification("lightgbm", "lightgbm-v2", 5.0, {"roc_auc": 0.9})
        service.send_rollback("random_forest", "random_forest-v1", "random_forest-v2", "smoke")
        assert [r.subject for r in server.received] == [
            "[retrain] random_forest: rolled back to random_forest-v1"]
        service.flush(now=True)  # the backoff is skipped: both go, in the order written
    assert [r.message["X-Retrain-Kind"] for r in server.received] == [
        "rollback", "pending_promotion", "promotion"]
    assert int(server.received[1].message["X-Retrain-Notification-Id"]) == pending


def test_the_message_id_is_a_pure_function_of_the_row(workspace):
    port = free_port()
    mail_to(workspace, port)
    service = NotificationService(workspace=workspace)
    with SmtpServer(port) as server:
        [row_id] = service.send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2", "why")
        service.outbox.retry_failed()
        with workspace.registry.transaction() as s:  # delivered again, as after a crash
            row = s.get(Notification, row_id)
            row.status = "pending"
        service.flush(now=True)
    first, second = (r.message["Message-ID"] for r in server.received)
    with workspace.registry.reading() as s:
        expected = message_id(s.get(Notification, row_id))
    assert first == second == expected
    assert expected.startswith(f"<retrain-{row_id}.") and expected.endswith("@retrain.local>")


def test_a_drift_alert_of_the_seeds_should_retrain_info_names_the_drifted_models():
    from retrain.reporting.messages import drift_alert
    info = {"trigger_reason": "drift", "models_to_retrain": ["lightgbm"], "models": {
        "lightgbm": {"reasons": ["drift"], "retrain": True,
                     "drift": {"detected": True, "drifted_features": ["income"], "share": 0.4}},
        "random_forest": {"reasons": [], "retrain": False,
                          "drift": {"detected": False, "drifted_features": [], "share": 0.0}}}}
    message = drift_alert(info)
    assert message.subject == "[retrain] data drift detected for lightgbm"
    assert "lightgbm: DRIFT" in message.text and "drifted: income" in message.text
    assert drift_alert({"detected": False, "share": 0.0}).subject == \
        "[retrain] drift check: no drift detected"


def test_a_bootstrap_notice_says_it_is_the_first_production_version():
    from retrain.reporting.messages import pending_promotion
    assert pending_promotion("lightgbm", "lightgbm-v1", None, "bootstrap").subject == \
        "[retrain] lightgbm: lightgbm-v1 will become the first production version"


def test_the_log_channel_delivers_only_where_its_lines_show(workspace):
    """A logger below INFO would drop the line: the notice stays pending, never `sent`."""
    import logging
    service = NotificationService(workspace=workspace)
    assert service.channels() == ["log"]
    logger = logging.getLogger("retrain")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        (quiet,) = service.send_rollback("lightgbm", "lightgbm-v1", "lightgbm-v2", "test")
        (row,) = service.outbox.messages()
        assert row.status == "pending" and "nobody would see it" in row.last_error
    finally:
        logger.setLevel(level)
    service.flush(now=True)
    assert {m.id: m.status for m in service.outbox.messages()}[quiet] == "sent"


def test_a_handler_that_keeps_only_flow_run_lines_does_not_count_outside_a_run():
    """The Prefect layer's API handler on the retrain logger keeps only lines of a flow run:
    outside one, a notice on the log channel would reach nobody, so it is not delivered."""
    import logging

    from retrain.notify.channels import DeliveryError, send_log
    from retrain.registry.tables import Notification

    logger = logging.getLogger("retrain")
    only_in_runs = logging.Handler()
    only_in_runs.addFilter(lambda record: False)
    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [only_in_runs], False
    try:
        with pytest.raises(DeliveryError, match="nobody would see it"):
            send_log(None, Notification(kind="rollback", channel="log", subject="s", body_text="b"))
    finally:
        logger.handlers, logger.propagate = saved
