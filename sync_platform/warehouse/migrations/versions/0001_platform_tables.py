"""Platform tables: audit, record log, errors, gaps, state, quarantine, runtime config.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "sync_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("dagster_run_id", sa.String(64)),
        sa.Column("partition_key", sa.String(100)),
        sa.Column("started_at", ts(), nullable=False),
        sa.Column("finished_at", ts()),
        sa.Column("status", sa.String(20), nullable=False),
        *(
            counter(name)
            for name in (
                "fetched",
                "inserted",
                "updated",
                "unchanged",
                "soft_deleted",
                "quarantined",
                "failed",
            )
        ),
        sa.Column("verification", sa.String(20)),
        sa.Column("source_count", sa.Integer),
        sa.Column("warehouse_count", sa.Integer),
        sa.Column("gap_count", sa.Integer),
        sa.Column("phase_seconds", Json),
        sa.Column("error_counts", Json),
        sa.Column("rows_per_second", sa.Float),
        sa.Column("message", sa.Text),
        sa.CheckConstraint(
            "trigger IN ('scheduled', 'manual', 'sensor', 'resync', 'backfill')",
            name="ck_sync_runs_trigger",
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'warning', 'failed')", name="ck_sync_runs_status"
        ),
    )
    op.create_index("ix_sync_runs_entity_started", "sync_runs", ["source", "entity", "started_at"])
    op.create_index("ix_sync_runs_dagster_run", "sync_runs", ["dagster_run_id"])

    op.create_table(
        "sync_record_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("logged_at", ts(), nullable=False),
        sa.CheckConstraint(
            "operation IN ('insert', 'update', 'soft_delete', 'quarantine')",
            name="ck_sync_record_log_operation",
        ),
        sa.CheckConstraint("result IN ('success', 'failure')", name="ck_sync_record_log_result"),
    )
    op.create_index("ix_sync_record_log_run", "sync_record_log", ["sync_run_id"])
    op.create_index("ix_sync_record_log_key", "sync_record_log", ["entity", "record_key"])

    op.create_table(
        "sync_errors",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE")),
        sa.Column("dagster_run_id", sa.String(64)),
        sa.Column("source", sa.String(100)),
        sa.Column("entity", sa.String(100)),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("stack", sa.Text),
        sa.Column("record_key", sa.String(500)),
        sa.Column("occurred_at", ts(), nullable=False),
        sa.CheckConstraint(
            "category IN ('network', 'validation', 'database', 'configuration', 'unknown')",
            name="ck_sync_errors_category",
        ),
    )
    op.create_index("ix_sync_errors_occurred", "sync_errors", ["occurred_at"])

    op.create_table(
        "sync_gaps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detected_at", ts(), nullable=False),
        sa.Column("detected_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        counter("attempts"),
        sa.Column("last_attempt_at", ts()),
        sa.Column("resolved_at", ts()),
        sa.Column("resolved_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'unrecoverable')", name="ck_sync_gaps_status"
        ),
    )
    op.create_index(
        "uq_sync_gaps_open_key",
        "sync_gaps",
        ["source", "entity", "record_key"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(100), primary_key=True),
        sa.Column("cursor", sa.Text),
        sa.Column("updated_at", ts(), nullable=False),
        sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    )

    op.create_table(
        "sync_quarantine",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_key", sa.String(500)),
        sa.Column("raw_record", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("quarantined_at", ts(), nullable=False),
        sa.Column("resolved_at", ts()),
    )
    op.create_index("ix_sync_quarantine_entity", "sync_quarantine", ["source", "entity"])

    op.create_table(
        "sync_config",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", ts(), nullable=False),
        sa.Column("updated_by", sa.String(100)),
    )


def downgrade() -> None:
    for table in (
        "sync_config",
        "sync_quarantine",
        "sync_state",
        "sync_gaps",
        "sync_errors",
        "sync_record_log",
        "sync_runs",
    ):
        op.drop_table(table)
