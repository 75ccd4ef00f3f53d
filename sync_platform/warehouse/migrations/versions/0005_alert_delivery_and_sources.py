"""Alert delivery as a schedule of its own (when the next attempt is due, how many failed),
the sources this deployment has configured (since when), and circuit breakers shared by
every process that calls a source.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_alerts") as batch:
        batch.add_column(sa.Column("delivery_due_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0")
        )
    op.create_index("ix_sync_alerts_delivery_due", "sync_alerts", ["delivery_due_at"])
    # Alerts raised before this migration that still wait for a channel are due now.
    op.execute(
        "UPDATE sync_alerts SET delivery_due_at = last_seen_at "
        "WHERE pending_channels IS NOT NULL "
        "AND CAST(pending_channels AS TEXT) NOT IN ('[]', 'null')"
    )
    op.create_table(
        "sync_sources",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("configured_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sync_circuit_breakers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("fail_counter", sa.Integer, nullable=False, server_default="0"),
        sa.Column("success_counter", sa.Integer, nullable=False, server_default="0"),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_circuit_breakers")
    op.drop_table("sync_sources")
    op.drop_index("ix_sync_alerts_delivery_due", "sync_alerts")
    with op.batch_alter_table("sync_alerts") as batch:
        batch.drop_column("delivery_attempts")
        batch.drop_column("delivery_due_at")
