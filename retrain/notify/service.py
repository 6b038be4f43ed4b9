"""NotificationService: the seed's API on top of the outbox.

Every ``send_*`` writes the message to the outbox (one row per channel) and then tries to
deliver what is due. A channel that is down never raises: its messages stay pending and go out
with the next delivery (the next run, or ``retrain notify --flush``), in the order written.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from retrain.reporting import messages
from retrain.notify.channels import send_email, send_log, send_webhook
from retrain.reporting.messages import Message
from retrain.notify.outbox import Outbox
from retrain.registry.tables import Notification
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class NotificationService:
    def __init__(self, email_recipients: list[str] | None = None, config=None,
                 workspace: Workspace | None = None, smtp_password: str | None = None):
        self.workspace = workspace or Workspace.open(config)
        self.config = self.workspace.settings.notifications
        self.email_recipients = (list(email_recipients) if email_recipients is not None
                                 else list(self.config.email_recipients))
        self._smtp_password = smtp_password
        self.outbox = Outbox(self.workspace.registry, self.config)

    # Channels ---------------------------------------------------------------------------
    def channels(self) -> list[str]:
        out = []
        if self.config.smtp_host and self.email_recipients:
            out.append("email")
        if self.config.webhook_url:
            out.append("webhook")
        return out or ["log"]

    def _send(self, row: Notification) -> None:
        if row.channel == "email":
            send_email(self.config, row, self._smtp_password)
        elif row.channel == "webhook":
            send_webhook(self.config, row)
        else:
            send_log(self.config, row)

    def write(self, session: Session, message: Message, *, status: str = "pending",
              switch_id: str | None = None) -> list[int]:
        """``message``'s rows, one per channel, in the caller's transaction (``held`` rows
        wait for ``Outbox.release_in``)."""
        return [Outbox.add(session, kind=message.kind, channel=channel, subject=message.subject,
                           body_text=message.text, body_html=message.html,
                           recipients=self.email_recipients if channel == "email" else [],
                           model_name=message.model_name, payload=message.payload,
                           status=status, switch_id=switch_id).id
                for channel in self.channels()]

    def notify(self, message: Message, deliver: bool = True) -> list[int]:
        """Store ``message`` for every channel, then deliver what is due (never raises for a
        channel that is down)."""
        with self.workspace.registry.transaction() as session:
            ids = self.write(session, message)
        if deliver:
            self.flush()
        return ids

    def flush(self, now: bool = False) -> dict[str, int]:
        """Deliver every due message, oldest first. ``now`` skips the retry backoff."""
        if now:
            self.outbox.make_due_now()
        return self.outbox.deliver(self._send)

    def delivered(self, ids: list[int]) -> bool:
        with self.workspace.registry.reading() as s:
            return all(s.get(Notification, i).status == "sent" for i in ids)

    # The seed's API ---------------------------------------------------------------------
    def send_retraining_summary(self, drift_detected: bool, volume_threshold_met: bool,
                                deployment_results: dict[str, Any], summary_text: str = "") -> list[int]:
        return self.notify(messages.retraining_summary(drift_detected, volume_threshold_met,
                                                       deployment_results, summary_text))

    def send_drift_alert(self, drift_results: dict[str, Any],
                         report_links: dict[str, str] | None = None) -> list[int]:
        return self.notify(messages.drift_alert(drift_results, report_links))

    def send_promotion_notification(self, model_name: str, version_id: str,
                                    improvement_percent: float | None,
                                    new_metrics: dict[str, float], **extra: Any) -> list[int]:
        return self.notify(messages.promotion(model_name, version_id, improvement_percent,
                                              new_metrics, **extra))

    def send_pending_promotion(self, model_name: str, version_id: str, previous: str | None,
                               reason: str, candidate: dict | None = None,
                               production: dict | None = None) -> list[int]:
        return self.notify(messages.pending_promotion(model_name, version_id, previous, reason,
                                                      candidate, production))

    def send_rejection(self, model_name: str, version_id: str, reason: str,
                       candidate: dict | None = None, production: dict | None = None) -> list[int]:
        return self.notify(messages.rejection(model_name, version_id, reason, candidate, production))

    def send_rollback(self, model_name: str, version_id: str, rolled_back_from: str | None,
                      reason: str) -> list[int]:
        return self.notify(messages.rollback(model_name, version_id, rolled_back_from, reason))

    def send_failure_alert(self, flow_name: str, run_name: str, state: str, message: str,
                           url: str | None = None) -> list[int]:
        return self.notify(messages.failure(flow_name, run_name, state, message, url))

    # A/B tests and rollouts -------------------------------------------------------------
    def send_ab_test_result(self, document: dict[str, Any]) -> list[int]:
        """A winner was declared or a test ended (``document`` from ``check_test_status``)."""
        return self.notify(messages.ab_test_result(document))

    def send_ab_test_started(self, test: dict[str, Any], actor: str) -> list[int]:
        """A test began (``test`` from ``create_ab_test``)."""
        return self.notify(messages.ab_test_started(
            test["model_name"], test["test_id"], test["version_a"], test["version_b"],
            test["traffic_split"], test["metric"], test["ends_at"], actor))

    def send_rollout_step(self, model_name: str, rollout_id: str, version_id: str, step: int,
                          steps: int, traffic_percentage: float, reason: str = "") -> list[int]:
        return self.notify(messages.rollout_step(model_name, rollout_id, version_id, step, steps,
                                                 traffic_percentage, reason))

    def send_rollout_rollback(self, model_name: str, rollout_id: str, version_id: str,
                              production: str | None, reason: str) -> list[int]:
        return self.notify(messages.rollout_rollback(model_name, rollout_id, version_id,
                                                     production, reason))
