"""Alerts, update conflicts, records held for a missing parent, and per-entity sync leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", Json),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("last_seen_at", ts(), nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("last_notified_at", ts()),
        sa.Column("delivered_channels", Json),
        sa.Column("pending_channels", Json),
        sa.Column("resolved_at", ts()),
        sa.Column("acknowledged_at", ts()),
        sa.Column("acknowledged_by", sa.String(100)),
        sa.CheckConstraint(
            "severity IN ('high', 'medium', 'warning', 'low')", name="ck_sync_alerts_severity"
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_sync_alerts_status"),
    )
    op.create_index(
        "uq_sync_alerts_open_dedup",
        "sync_alerts",
        ["dedup_key"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_sync_alerts_created", "sync_alerts", ["created_at"])

    op.create_table(
        "sync_conflicts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE")),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("incoming_timestamp", ts()),
        sa.Column("warehouse_timestamp", ts()),
        sa.Column("resolution", sa.String(30), nullable=False),
        sa.Column("detected_at", ts(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('stale_source', 'concurrent_update')", name="ck_sync_conflicts_kind"
        ),
        sa.CheckConstraint(
            "resolution IN ('kept_warehouse', 'applied_source')",
            name="ck_sync_conflicts_resolution",
        ),
    )
    op.create_index("ix_sync_conflicts_entity", "sync_conflicts", ["source", "entity"])

    op.create_table(
        "sync_held_records",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("first_held_at", ts(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("last_attempt_at", ts(), nullable=False),
        sa.Column("released_at", ts()),
        sa.Column("released_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    )
    op.create_index(
        "uq_sync_held_waiting_key",
        "sync_held_records",
        ["source", "entity", "record_key"],
        unique=True,
        postgresql_where=sa.text("released_at IS NULL"),
        sqlite_where=sa.text("released_at IS NULL"),
    )

    op.create_table(
        "sync_leases",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("sync_run_id", Id),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", ts(), nullable=False),
        sa.Column("heartbeat_at", ts(), nullable=False),
    )


def downgrade() -> None:
    for table in ("sync_leases", "sync_held_records", "sync_conflicts", "sync_alerts"):
        op.drop_table(table)
