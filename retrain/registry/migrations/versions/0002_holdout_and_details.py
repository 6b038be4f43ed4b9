"""Record each version's holdout (start, rows) and structured details on audit events.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("holdout_start", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("holdout_rows", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("details", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("holdout_rows")
        batch.drop_column("holdout_start")
