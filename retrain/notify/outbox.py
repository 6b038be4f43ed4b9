"""The outbox table's operations: write rows (on their own or inside another transaction),
claim with a lease, mark sent or retry later, hold and release a switch's notices.

Delivery keeps the order rows were written in, per model and channel: a row that cannot go
yet (waiting out its retry backoff, held for a smoke check, or being delivered by another
process) holds back every later row of the same model on the same channel, so a "pending
promotion" notice is never overtaken by the promotion notice that follows it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import or_, update
from sqlmodel import Session, select

from retrain.config import NotificationsConfig
from retrain.registry import Registry
from retrain.registry.tables import Notification, utcnow

log = logging.getLogger("retrain")

LEASE = timedelta(minutes=5)


class Outbox:
    def __init__(self, registry: Registry, config: NotificationsConfig):
        self.registry = registry
        self.config = config

    # Writing --------------------------------------------------------------------------------
    @staticmethod
    def add(session: Session, *, kind: str, channel: str, subject: str, body_text: str,
            body_html: str = "", recipients: list[str] | None = None,
            model_name: str | None = None, payload: dict[str, Any] | None = None,
            status: str = "pending", switch_id: str | None = None) -> Notification:
        """One row, in the caller's transaction (a switch writes its notices with itself)."""
        row = Notification(kind=kind, channel=channel, subject=subject, body_text=body_text,
                           body_html=body_html, recipients=recipients or [],
                           model_name=model_name, payload=payload or {}, status=status,
                           switch_id=switch_id)
        session.add(row)
        session.flush()
        return row

    @staticmethod
    def release_in(session: Session, switch_id: str) -> int:
        """The switch's held rows become pending (its smoke check has run)."""
        result = session.exec(update(Notification).where(
            Notification.switch_id == switch_id, Notification.status == "held")
            .values(status="pending", next_attempt_at=utcnow()))
        return result.rowcount

    @staticmethod
    def cancel_in(session: Session, switch_id: str) -> int:
        """The switch's held rows are never sent (the smoke check undid the switch)."""
        result = session.exec(update(Notification).where(
            Notification.switch_id == switch_id, Notification.status == "held")
            .values(status="cancelled"))
        return result.rowcount

    # Delivering -----------------------------------------------------------------------------
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

    def due_ids(self) -> list[tuple[int, str]]:
        """``(id, channel)`` of the rows that may be delivered now, oldest first: pending and
        due, with no earlier row of the same model and channel still waiting (pending but
        not due, held, or leased by another delivery)."""
        now = utcnow()
        with self.registry.reading() as s:
            rows = s.exec(select(Notification.id, Notification.channel, Notification.model_name,
                                 Notification.status, Notification.next_attempt_at,
                                 Notification.lease_until)
                          .where(Notification.status.in_(("pending", "held")))
                          .order_by(Notification.id)).all()
        waiting: set[tuple[str | None, str]] = set()
        due = []
        for row_id, channel, model_name, status, next_attempt_at, lease_until in rows:
            key = (model_name, channel)
            ready = (status == "pending" and next_attempt_at <= now
                     and (lease_until is None or lease_until < now))
            if key in waiting or not ready:
                waiting.add(key)
                continue
            due.append((row_id, channel))
        return due

    def deliver(self, send: Callable[[Notification], None], *,
                stop_channel_on_error: bool = True) -> dict[str, int]:
        """Deliver the rows that may go now (``due_ids``), in the order they were written.

        After a failure on a channel, later rows of that channel wait too (this time), and the
        failed row's own model keeps waiting on that channel until it is delivered.
        """
        counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
        blocked: set[str] = set()
        for notification_id, channel in self.due_ids():
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

    # Reading and maintenance ----------------------------------------------------------------
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
