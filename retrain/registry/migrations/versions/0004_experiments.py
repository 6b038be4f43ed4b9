"""Experiments (A/B tests and rollouts), the prediction log and feedback.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('running', 'paused')")


def upgrade() -> None:
    op.create_table(
        "experiment",
        sa.Column("id", sa.String(250), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_model.name"),
                  nullable=False),
        sa.Column("version_a", sa.String(250), sa.ForeignKey("model_version.version_id"),
                  nullable=False),
        sa.Column("version_b", sa.String(250), sa.ForeignKey("model_version.version_id"),
                  nullable=False),
        sa.Column("traffic_b", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("metric", sa.String(20), nullable=False),
        sa.Column("strategy", sa.String(20), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("next_step_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("winner", sa.String(20), nullable=True),
        sa.Column("best_p_value", sa.Float(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("kind IN ('ab_test', 'rollout')", name="ck_experiment_kind"),
        sa.CheckConstraint("status IN ('running', 'paused', 'significant', 'inconclusive', "
                           "'stopped', 'completed', 'rolled-back')", name="ck_experiment_status"),
        sa.CheckConstraint("traffic_b >= 0 AND traffic_b <= 1", name="ck_experiment_traffic"),
        sa.CheckConstraint("version_a <> version_b", name="ck_experiment_two_versions"),
    )
    op.create_index("ix_experiment_model_name", "experiment", ["model_name"])
    op.create_index("uq_one_active_experiment_per_model", "experiment", ["model_name"],
                    unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("version_id", sa.String(250), nullable=False),
        sa.Column("variant", sa.String(20), nullable=False),
        sa.Column("experiment_id", sa.String(250), nullable=True),
        sa.Column("prediction", sa.Float(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("variant IN ('A', 'B', 'production')", name="ck_prediction_log_variant"),
    )
    op.create_index("ix_prediction_log_request_id", "prediction_log", ["request_id"])
    op.create_index("ix_prediction_log_experiment_at", "prediction_log", ["experiment_id", "at"])
    op.create_index("ix_prediction_log_model_version_at", "prediction_log",
                    ["model_name", "version_id", "at"])
    op.create_index("ix_prediction_log_at", "prediction_log", ["at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("label", sa.Float(), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("label IS NOT NULL OR reward IS NOT NULL",
                           name="ck_feedback_has_outcome"),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("prediction_log")
    op.drop_table("experiment")
