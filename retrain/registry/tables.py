"""Registry tables (SQLModel). The schema is created and upgraded by Alembic migrations."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

STATUSES = ("candidate", "production", "archived", "rejected")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_model"

    name: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=50)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("model_name", "number", name="uq_model_version_number"),
        # The database itself allows at most one production version per model.
        Index("uq_one_production_per_model", "model_name", unique=True,
              sqlite_where=text("status = 'production'"),
              postgresql_where=text("status = 'production'")),
    )

    version_id: str = Field(primary_key=True, max_length=250)
    model_name: str = Field(foreign_key="registered_model.name", index=True, max_length=200)
    number: int
    kind: str = Field(max_length=50)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    train_start: NaiveDatetime
    train_end: NaiveDatetime
    holdout_start: NaiveDatetime | None = None
    row_count: int
    holdout_rows: int = Field(default=0,
                              sa_column=Column(Integer, nullable=False, server_default="0"))
    data_fingerprint: str = Field(max_length=64)
    feature_schema: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    artifact_path: str
    artifact_sha256: str = Field(max_length=64)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    status: str = Field(default="candidate", max_length=20)
    promoted_at: NaiveDatetime | None = None


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, max_length=200)
    version_id: str | None = Field(default=None, max_length=250)
    action: str = Field(max_length=50)
    actor: str = Field(max_length=200)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict,
                                    sa_column=Column(JSON, nullable=False, server_default="{}"))
    at: NaiveDatetime = Field(default_factory=utcnow, index=True)


NOTIFICATION_STATUSES = ("pending", "sent", "failed")


class Notification(SQLModel, table=True):
    """The outbox: every notification is written here first, then delivered with retries.

    One row per channel (email, webhook, log), so each channel is retried and marked sent on
    its own. ``failed`` means the attempts ran out; ``retrain notify --retry-failed`` resets them.
    """

    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=50)
    channel: str = Field(max_length=20)
    model_name: str | None = Field(default=None, max_length=200)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    body_html: str = Field(default="", sa_column=Column(Text, nullable=False))
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    next_attempt_at: NaiveDatetime = Field(default_factory=utcnow)
    # A delivery in progress holds the row until then, so two flushers never send it twice.
    lease_until: NaiveDatetime | None = None
    sent_at: NaiveDatetime | None = None
