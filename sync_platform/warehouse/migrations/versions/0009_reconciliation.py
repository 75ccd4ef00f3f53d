"""Reconciliation: its runs, the discrepancies it found (one row per record), the audit of
every resolution action, and the queue of warehouse versions to write back to a source; and
sync conflicts of records both sides changed (`both_changed`, `held_for_review`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def Timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("dagster_run_id", sa.String(64)),
        sa.Column("started_at", Timestamp(), nullable=False),
        sa.Column("finished_at", Timestamp()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", Json),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_reconciliation_runs_source", "reconciliation_runs", ["source", "id"])
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("fields", Json),
        sa.Column("source_values", Json),
        sa.Column("warehouse_values", Json),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("first_seen_at", Timestamp(), nullable=False),
        sa.Column("last_seen_at", Timestamp(), nullable=False),
        sa.Column("last_run_id", sa.BigInteger),
        sa.Column("ignored_until", Timestamp()),
        sa.Column("resolution", sa.String(20)),
        sa.Column("note", sa.Text),
        sa.Column("resolved_at", Timestamp()),
        sa.UniqueConstraint("source", "entity", "record_key", name="uq_reconciliation_record"),
    )
    op.create_index(
        "ix_reconciliation_discrepancies_status",
        "reconciliation_discrepancies",
        ["status", "severity"],
    )
    op.create_table(
        "reconciliation_actions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("discrepancy_id", sa.BigInteger),
        sa.Column("before", Json),
        sa.Column("after", Json),
        sa.Column("detail", sa.Text),
        sa.Column("dagster_run_id", sa.String(64)),
    )
    op.create_index("ix_reconciliation_actions_at", "reconciliation_actions", ["at"])
    op.create_table(
        "reconciliation_pushes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("record", Json, nullable=False),
        sa.Column("action_id", sa.BigInteger),
        sa.Column("queued_at", Timestamp(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("applied_at", Timestamp()),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_reconciliation_pushes_status", "reconciliation_pushes", ["status"])
    _conflict_checks(
        "kind IN ('stale_source', 'concurrent_update', 'both_changed')",
        "resolution IN ('kept_warehouse', 'applied_source', 'held_for_review')",
    )


def _conflict_checks(kind: str, resolution: str) -> None:
    """sync_conflicts learns `both_changed` rows and the `held_for_review` resolution."""
    with op.batch_alter_table("sync_conflicts") as batch:
        batch.drop_constraint("ck_sync_conflicts_kind", type_="check")
        batch.drop_constraint("ck_sync_conflicts_resolution", type_="check")
        batch.create_check_constraint("ck_sync_conflicts_kind", kind)
        batch.create_check_constraint("ck_sync_conflicts_resolution", resolution)


def downgrade() -> None:
    _conflict_checks(
        "kind IN ('stale_source', 'concurrent_update')",
        "resolution IN ('kept_warehouse', 'applied_source')",
    )
    op.drop_index("ix_reconciliation_pushes_status", table_name="reconciliation_pushes")
    op.drop_table("reconciliation_pushes")
    op.drop_index("ix_reconciliation_actions_at", table_name="reconciliation_actions")
    op.drop_table("reconciliation_actions")
    op.drop_index(
        "ix_reconciliation_discrepancies_status", table_name="reconciliation_discrepancies"
    )
    op.drop_table("reconciliation_discrepancies")
    op.drop_index("ix_reconciliation_runs_source", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
