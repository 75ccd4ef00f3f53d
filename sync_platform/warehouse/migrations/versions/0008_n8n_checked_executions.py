"""The n8n executions whose deliveries the gap check has compared with the inbox, so each is
read from n8n once: `complete` (every delivery it sent is in the inbox), `failed` (an error
execution, reported) or `resent` (an error execution whose built payload was resent).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "n8n_checked_executions",
        sa.Column("workflow_key", sa.String(100), primary_key=True),
        sa.Column("execution_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text),
        sa.CheckConstraint(
            "status IN ('complete', 'failed', 'resent')", name="ck_n8n_checked_executions_status"
        ),
    )
    op.create_index("ix_n8n_checked_executions_checked", "n8n_checked_executions", ["checked_at"])


def downgrade() -> None:
    op.drop_index("ix_n8n_checked_executions_checked", table_name="n8n_checked_executions")
    op.drop_table("n8n_checked_executions")
