"""The outbox table's operations: enqueue, claim with a lease, mark sent or retry later."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import or_, update
from sqlmodel import select

from retrain.config import NotificationsConfig
from retrain.registry import Registry
from retrain.registry.tables import Notification, utcnow

log = logging.getLogger("retrain")

LEASE = timedelta(minutes=5)


class Outbox:
    def __init__(self, registry: Registry, config: NotificationsConfig):
        self.registry = registry
        self.config = config

    def enqueue(self, *, kind: str, channel: str, subject: str, body_text: str, body_html: str = "",
                recipients: list[str] | None = None, model_name: str | None = None,
                payload: dict[str, Any] | None = None) -> int:
        with self.registry.transaction() as s:
            row = Notification(kind=kind, channel=channel, subject=subject, body_text=body_text,
                               body_html=body_html, recipients=recipients or [],
                               model_name=model_name, payload=payload or {})
            s.add(row)
            s.flush()
            return row.id

    def _claim(self, notification_id: int) -> Notification | None:
        """Take a due message for delivery; None if someone else holds it or it is done."""
        now = utcnow()
        with self.registry.transaction() as s:
            result = s.exec(update(Notification).where(
                Notification.id == notification_id, Notification.status == "pending",
                Notification.next_attempt_at <= now,
                or_(Notification.lease_until.is_(None), Notification.lease_until < now),
            ).values(lease_until=now + LEASE, attempts=Notification.attempts + 1))
            if result.rowcount != 1:
                return None
            return s.get(Notification, notification_id)

    def _finish(self, notification_id: int, error: str | None) -> None:
        now = utcnow()
        with self.registry.transaction() as s:
            row = s.get(Notification, notification_id)
            row.lease_until = None
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, None
            else:
                row.last_error = error[:2000]
                if row.attempts >= self.config.max_attempts:
                    row.status = "failed"
                else:  # exponential backoff
                    delay = self.config.retry_backoff_seconds * 2 ** (row.attempts - 1)
                    row.next_attempt_at = now + timedelta(seconds=delay)
            s.add(row)

    def due_ids(self, ids: list[int] | None = None) -> list[int]:
        now = utcnow()
        with self.registry.reading() as s:
            query = select(Notification.id).where(Notification.status == "pending",
                                                  Notification.next_attempt_at <= now)
            if ids is not None:
                query = query.where(Notification.id.in_(ids))
            return list(s.exec(query.order_by(Notification.id)))

    def deliver(self, send: Callable[[Notification], None], ids: list[int] | None = None,
                *, stop_channel_on_error: bool = True) -> dict[str, int]:
        """Deliver due messages in the order they were written.

        After a failure on a channel, later messages of that channel wait too, so a "pending
        promotion" notice is never overtaken by the promotion notice that follows it.
        """
        counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
        blocked: set[str] = set()
        for notification_id in self.due_ids(ids):
            with self.registry.reading() as s:
                channel = s.get(Notification, notification_id).channel
            if channel in blocked:
                counts["skipped"] += 1
                continue
            row = self._claim(notification_id)
            if row is None:
                counts["skipped"] += 1
                continue
            try:
                send(row)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the message for a retry
                self._finish(notification_id, f"{type(exc).__name__}: {exc}")
                final = row.attempts >= self.config.max_attempts
                counts["failed" if final else "retry"] += 1
                log.warning("notification %d (%s, %s) not delivered (attempt %d): %s",
                            notification_id, row.kind, channel, row.attempts, exc)
                if stop_channel_on_error:
                    blocked.add(channel)
            else:
                self._finish(notification_id, None)
                counts["sent"] += 1
        return counts

    def messages(self, status: str | None = None, limit: int = 100) -> list[Notification]:
        with self.registry.reading() as s:
            query = select(Notification)
            if status:
                query = query.where(Notification.status == status)
            return list(s.exec(query.order_by(Notification.id.desc()).limit(limit)))

    def retry_failed(self) -> int:
        """Give messages whose attempts ran out another round."""
        with self.registry.transaction() as s:
            result = s.exec(update(Notification).where(Notification.status == "failed")
                            .values(status="pending", attempts=0, next_attempt_at=utcnow()))
            return result.rowcount

    def make_due_now(self) -> None:
        """Skip the backoff wait (``retrain notify --flush`` delivers now)."""
        with self.registry.transaction() as s:
            s.exec(update(Notification).where(Notification.status == "pending")
                   .values(next_attempt_at=utcnow()))
