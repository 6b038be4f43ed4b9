"""Registry tables (SQLModel). The schema is created and upgraded by Alembic migrations."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, Index, Integer, String, Text, UniqueConstraint, text
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
    # binary | multiclass | regression: fixed for a model once its first version is trained
    task: str = Field(default="binary", sa_column=Column(String(20), nullable=False,
                                                         server_default="binary"))
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


# held: written with a production switch, released (pending) once its smoke check has run, or
# cancelled when the check undid the switch.
NOTIFICATION_STATUSES = ("pending", "held", "sent", "failed", "cancelled")


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
    switch_id: str | None = Field(default=None, max_length=32, index=True)


class ProductionSwitch(SQLModel, table=True):
    """One change of a model's production version, as it goes: ``announced`` (its pending
    notice is written), ``switched`` (the pointer moved; its notices after are held),
    ``checked`` (the smoke check passed, or there was none; the notices are released), or
    ``undone`` (the check failed and the switch was reversed) or ``abandoned`` (it never
    happened; a notice said so). A switch left announced or switched by a process that died
    is finished by the next run or ``retrain notify --flush``."""

    __tablename__ = "production_switch"

    id: str = Field(primary_key=True, max_length=32)
    model_name: str = Field(foreign_key="registered_model.name", index=True, max_length=200)
    version_id: str = Field(foreign_key="model_version.version_id", max_length=250)
    previous_version: str | None = Field(default=None, max_length=250)
    kind: str = Field(max_length=20)  # promotion | rollback | withdrawal
    state: str = Field(default="announced", max_length=20, index=True)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    smoke_sample: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    owner: str = Field(max_length=300)  # host:pid of the process making it
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


EXPERIMENT_KINDS = ("ab_test", "rollout")
# Active experiments route traffic; every other status is final.
ACTIVE_EXPERIMENT_STATUSES = ("running", "paused")
# Final statuses: an A/B test ends significant, inconclusive or stopped; a rollout ends
# completed (candidate promoted), rolled-back (guardrail breach) or stopped (aborted).
FINAL_EXPERIMENT_STATUSES = ("significant", "inconclusive", "stopped", "completed", "rolled-back")
VARIANTS = ("A", "B", "production")


class Experiment(SQLModel, table=True):
    """An A/B test or a rollout: live traffic split between version A (control, normally
    production) and version B (challenger or candidate)."""

    __tablename__ = "experiment"
    __table_args__ = (
        # The database itself allows at most one active experiment per model, so two people
        # (or processes) starting one at the same time cannot both succeed.
        Index("uq_one_active_experiment_per_model", "model_name", unique=True,
              sqlite_where=text("status IN ('running', 'paused')"),
              postgresql_where=text("status IN ('running', 'paused')")),
    )

    id: str = Field(primary_key=True, max_length=250)
    kind: str = Field(max_length=20)
    model_name: str = Field(foreign_key="registered_model.name", index=True, max_length=200)
    version_a: str = Field(foreign_key="model_version.version_id", max_length=250)
    version_b: str = Field(foreign_key="model_version.version_id", max_length=250)
    traffic_b: float  # share of keys routed to version B now, in [0, 1]
    salt: str = Field(max_length=64)
    status: str = Field(default="running", max_length=20)
    metric: str = Field(max_length=20)
    strategy: str | None = Field(default=None, max_length=20)
    schedule: list[dict[str, Any]] = Field(default_factory=list,
                                           sa_column=Column(JSON, nullable=False))
    step: int = 0
    next_step_at: NaiveDatetime | None = None
    started_at: NaiveDatetime = Field(default_factory=utcnow)
    ends_at: NaiveDatetime | None = None
    ended_at: NaiveDatetime | None = None
    winner: str | None = Field(default=None, max_length=20)
    best_p_value: float | None = None
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=200)


class PredictionLog(SQLModel, table=True):
    """One served prediction: which version answered which request, in which variant."""

    __tablename__ = "prediction_log"
    __table_args__ = (
        # A version's live outcomes (retrain.triggers.live), newest first or since a time.
        Index("ix_prediction_log_model_version_at", "model_name", "version_id", "at"),
        # An experiment's requests and outcomes, all or since a time (retrain.experiments.store).
        Index("ix_prediction_log_experiment_at", "experiment_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(index=True, max_length=200)
    model_name: str = Field(max_length=200)
    version_id: str = Field(max_length=250)
    variant: str = Field(max_length=20)
    experiment_id: str | None = Field(default=None, max_length=250)
    prediction: float  # the value, the class (binary) or its position in the classes
    probability: float | None = None
    # Multiclass: each class's probability, in the model's class order.
    probabilities: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: NaiveDatetime = Field(default_factory=utcnow, index=True)


class Feedback(SQLModel, table=True):
    """The outcome of a request, once known: its true label and/or a numeric reward."""

    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(index=True, max_length=200)
    model_name: str | None = Field(default=None, max_length=200)
    label: float | None = None
    reward: float | None = None
    at: NaiveDatetime = Field(default_factory=utcnow)
