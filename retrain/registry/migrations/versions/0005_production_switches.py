"""Production switches that survive a crash: each change of production is a row that goes
from announced to switched to checked, and the notices written with it can be held until the
smoke check has run.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "production_switch",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_model.name"),
                  nullable=False),
        sa.Column("version_id", sa.String(250), sa.ForeignKey("model_version.version_id"),
                  nullable=False),
        sa.Column("previous_version", sa.String(250), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("smoke_sample", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state IN ('announced', 'switched', 'checked', 'undone', 'abandoned')",
                           name="ck_production_switch_state"),
    )
    op.create_index("ix_production_switch_model_name", "production_switch", ["model_name"])
    op.create_index("ix_production_switch_state", "production_switch", ["state"])
    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("switch_id", sa.String(32), nullable=True))
        batch.drop_constraint("ck_notification_status", type_="check")
        batch.create_check_constraint(
            "ck_notification_status", "status IN ('pending', 'held', 'sent', 'failed', 'cancelled')")
        batch.create_index("ix_notification_switch_id", ["switch_id"])


def downgrade() -> None:
    with op.batch_alter_table("notification") as batch:
        batch.drop_index("ix_notification_switch_id")
        batch.drop_constraint("ck_notification_status", type_="check")
        batch.create_check_constraint("ck_notification_status",
                                      "status IN ('pending', 'sent', 'failed')")
        batch.drop_column("switch_id")
    op.drop_table("production_switch")
