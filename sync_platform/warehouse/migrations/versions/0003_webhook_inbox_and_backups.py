"""Webhook inbox and rejected deliveries; the backups catalogue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("workflow_key", sa.String(100), nullable=False),
        sa.Column("execution_id", sa.String(100)),
        sa.Column("received_at", ts(), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("processed_at", ts()),
        sa.Column("processed_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("reason", sa.Text),
        sa.UniqueConstraint("delivery_id", name="uq_webhook_inbox_delivery"),
        sa.CheckConstraint("origin IN ('receiver', 'resync')", name="ck_webhook_inbox_origin"),
        sa.CheckConstraint(
            "status IN ('pending', 'processed', 'quarantined')", name="ck_webhook_inbox_status"
        ),
    )
    op.create_index("ix_webhook_inbox_pending", "webhook_inbox", ["status", "id"])
    op.create_index("ix_webhook_inbox_execution", "webhook_inbox", ["workflow_key", "execution_id"])

    op.create_table(
        "webhook_rejections",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", ts(), nullable=False),
        sa.Column("workflow_key", sa.String(100), nullable=False),
        sa.Column("delivery_id", sa.String(200)),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_webhook_rejections_received", "webhook_rejections", ["received_at"])

    op.create_table(
        "backups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("source_database", sa.Text, nullable=False),
        sa.Column("dialect", sa.String(20), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("encrypted", sa.Boolean, nullable=False),
        sa.Column("key_id", sa.String(100)),
        sa.Column("table_counts", Json),
        sa.Column("table_checksums", Json),
        sa.Column("tool_versions", Json),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verified_at", ts()),
        sa.Column("backup_seconds", sa.Float),
        sa.Column("restore_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("pruned_at", ts()),
        sa.CheckConstraint("kind IN ('full', 'inbox')", name="ck_backups_kind"),
        sa.CheckConstraint(
            "status IN ('running', 'created', 'verified', 'failed')", name="ck_backups_status"
        ),
    )
    op.create_index("ix_backups_created", "backups", ["created_at"])


def downgrade() -> None:
    for table in ("backups", "webhook_rejections", "webhook_inbox"):
        op.drop_table(table)
