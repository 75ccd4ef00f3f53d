"""Indexes on the columns that point at a sync (`sync_runs.id`), for the audit's retention:
deleting a sync makes both databases look up the rows that reference it (cascade or set
null), and the retention asks whether anything open still points at it; without an index
each deleted sync scans those tables whole.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_sync_errors_run", "sync_errors", ["sync_run_id"]),
    ("ix_sync_conflicts_run", "sync_conflicts", ["sync_run_id"]),
    ("ix_sync_quarantine_run", "sync_quarantine", ["sync_run_id"]),
    ("ix_sync_gaps_detected_by", "sync_gaps", ["detected_by_run_id"]),
    ("ix_sync_gaps_resolved_by", "sync_gaps", ["resolved_by_run_id"]),
    ("ix_sync_held_records_released_by", "sync_held_records", ["released_by_run_id"]),
    ("ix_webhook_inbox_processed_by", "webhook_inbox", ["processed_by_run_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
