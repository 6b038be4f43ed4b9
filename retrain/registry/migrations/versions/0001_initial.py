"""Initial registry: registered models, versions (one production per model), audit log.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "model_version",
        sa.Column("version_id", sa.String(250), primary_key=True),
        sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_model.name"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("train_start", sa.DateTime(), nullable=False),
        sa.Column("train_end", sa.DateTime(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data_fingerprint", sa.String(64), nullable=False),
        sa.Column("feature_schema", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifact_path", sa.String(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("promoted_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("model_name", "number", name="uq_model_version_number"),
        sa.CheckConstraint("status IN ('candidate', 'production', 'archived', 'rejected')",
                           name="ck_model_version_status"),
    )
    op.create_index("ix_model_version_model_name", "model_version", ["model_name"])
    op.create_index("uq_one_production_per_model", "model_version", ["model_name"], unique=True,
                    sqlite_where=sa.text("status = 'production'"),
                    postgresql_where=sa.text("status = 'production'"))
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("version_id", sa.String(250), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_audit_event_model_name", "audit_event", ["model_name"])
    op.create_index("ix_audit_event_at", "audit_event", ["at"])


def downgrade() -> None:
    op.drop_table("audit_event")
    op.drop_table("model_version")
    op.drop_table("registered_model")
