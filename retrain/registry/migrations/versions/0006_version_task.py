"""Record the task of each version's target (binary, multiclass, regression); versions
registered before tasks existed are binary.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("task", sa.String(length=20), nullable=False,
                                   server_default="binary"))


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("task")
