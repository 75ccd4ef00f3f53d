"""The platform's own tables: audit, record log, errors, gaps, state, quarantine, config.

These are created and evolved by the Alembic migrations in `migrations/`; this module is
the Core description the code queries through (and which a test compares with what the
migrations create).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY, so ids are BIGINT on Postgres only.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def Timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("partition_key", sa.String(100)),
    sa.Column("started_at", Timestamp(), nullable=False),
    sa.Column("finished_at", Timestamp()),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("fetched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("soft_deleted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("quarantined", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("verification", sa.String(20)),
    sa.Column("source_count", sa.Integer),
    sa.Column("warehouse_count", sa.Integer),
    sa.Column("gap_count", sa.Integer),
    sa.Column("phase_seconds", Json),
    sa.Column("error_counts", Json),
    sa.Column("rows_per_second", sa.Float),
    sa.Column("message", sa.Text),
    # migration 0006: what the sync read (SyncRequest.kind); NULL for syncs from before it
    sa.Column("kind", sa.String(20)),
    # migration 0007: the read's shape against the mapping, when it differed: {"missing":
    # {column: source field}, "unmapped": [source field, …]}
    sa.Column("source_fields", Json),
    sa.CheckConstraint(
        "trigger IN ('scheduled', 'manual', 'sensor', 'resync', 'backfill')",
        name="ck_sync_runs_trigger",
    ),
    sa.CheckConstraint(
        "kind IN ('snapshot', 'changes', 'keys', 'slice')", name="ck_sync_runs_kind"
    ),
    sa.CheckConstraint(
        "status IN ('running', 'succeeded', 'warning', 'failed')", name="ck_sync_runs_status"
    ),
)
sa.Index(
    "ix_sync_runs_entity_started", sync_runs.c.source, sync_runs.c.entity, sync_runs.c.started_at
)
sa.Index("ix_sync_runs_dagster_run", sync_runs.c.dagster_run_id)

sync_record_log = sa.Table(
    "sync_record_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("operation", sa.String(20), nullable=False),
    sa.Column("result", sa.String(20), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("logged_at", Timestamp(), nullable=False),
    sa.CheckConstraint(
        "operation IN ('insert', 'update', 'soft_delete', 'quarantine')",
        name="ck_sync_record_log_operation",
    ),
    sa.CheckConstraint("result IN ('success', 'failure')", name="ck_sync_record_log_result"),
)
sa.Index("ix_sync_record_log_run", sync_record_log.c.sync_run_id)
sa.Index("ix_sync_record_log_key", sync_record_log.c.entity, sync_record_log.c.record_key)

sync_errors = sa.Table(
    "sync_errors",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE")),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("source", sa.String(100)),
    sa.Column("entity", sa.String(100)),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("stack", sa.Text),
    sa.Column("record_key", sa.String(500)),
    sa.Column("occurred_at", Timestamp(), nullable=False),
    sa.CheckConstraint(
        "category IN ('network', 'validation', 'database', 'configuration', 'unknown')",
        name="ck_sync_errors_category",
    ),
)
sa.Index("ix_sync_errors_occurred", sync_errors.c.occurred_at)
sa.Index("ix_sync_errors_run", sync_errors.c.sync_run_id)  # migration 0010

sync_gaps = sa.Table(
    "sync_gaps",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("detected_at", Timestamp(), nullable=False),
    sa.Column("detected_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", Timestamp()),
    sa.Column("resolved_at", Timestamp()),
    sa.Column("resolved_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    sa.CheckConstraint(
        "status IN ('open', 'resolved', 'unrecoverable')", name="ck_sync_gaps_status"
    ),
)
sa.Index(
    "uq_sync_gaps_open_key",
    sync_gaps.c.source,
    sync_gaps.c.entity,
    sync_gaps.c.record_key,
    unique=True,
    postgresql_where=sync_gaps.c.status == "open",
    sqlite_where=sync_gaps.c.status == "open",
)
# migration 0010: what a deleted sync's foreign keys look up (retention, `purge_audit`)
sa.Index("ix_sync_gaps_detected_by", sync_gaps.c.detected_by_run_id)
sa.Index("ix_sync_gaps_resolved_by", sync_gaps.c.resolved_by_run_id)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("entity", sa.String(100), primary_key=True),
    sa.Column("cursor", sa.Text),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
)

sync_quarantine = sa.Table(
    "sync_quarantine",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500)),
    sa.Column("raw_record", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("quarantined_at", Timestamp(), nullable=False),
    sa.Column("resolved_at", Timestamp()),
)
sa.Index("ix_sync_quarantine_entity", sync_quarantine.c.source, sync_quarantine.c.entity)
sa.Index("ix_sync_quarantine_run", sync_quarantine.c.sync_run_id)  # migration 0010

sync_config = sa.Table(
    "sync_config",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("updated_by", sa.String(100)),
)

# --- migration 0002: alerts, conflicts, held records, sync leases --------------------------

sync_alerts = sa.Table(
    "sync_alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", Json),
    sa.Column("dedup_key", sa.String(300), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("last_seen_at", Timestamp(), nullable=False),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_notified_at", Timestamp()),
    sa.Column("delivered_channels", Json),
    sa.Column("pending_channels", Json),
    sa.Column("resolved_at", Timestamp()),
    sa.Column("acknowledged_at", Timestamp()),
    sa.Column("acknowledged_by", sa.String(100)),
    # migration 0005: when the pending channels are next tried (NULL: nothing pending)
    sa.Column("delivery_due_at", Timestamp()),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint(
        "severity IN ('high', 'medium', 'warning', 'low')", name="ck_sync_alerts_severity"
    ),
    sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_sync_alerts_status"),
)
sa.Index(
    "uq_sync_alerts_open_dedup",
    sync_alerts.c.dedup_key,
    unique=True,
    postgresql_where=sync_alerts.c.status == "open",
    sqlite_where=sync_alerts.c.status == "open",
)
sa.Index("ix_sync_alerts_created", sync_alerts.c.created_at)
sa.Index("ix_sync_alerts_delivery_due", sync_alerts.c.delivery_due_at)

sync_conflicts = sa.Table(
    "sync_conflicts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sync_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="CASCADE")),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("incoming_timestamp", Timestamp()),
    sa.Column("warehouse_timestamp", Timestamp()),
    sa.Column("resolution", sa.String(30), nullable=False),
    sa.Column("detected_at", Timestamp(), nullable=False),
    # both_changed: the source and the warehouse changed the row since the last sync
    sa.CheckConstraint(
        "kind IN ('stale_source', 'concurrent_update', 'both_changed')",
        name="ck_sync_conflicts_kind",
    ),
    sa.CheckConstraint(
        "resolution IN ('kept_warehouse', 'applied_source', 'held_for_review')",
        name="ck_sync_conflicts_resolution",
    ),
)
sa.Index("ix_sync_conflicts_entity", sync_conflicts.c.source, sync_conflicts.c.entity)
sa.Index("ix_sync_conflicts_run", sync_conflicts.c.sync_run_id)  # migration 0010

sync_held_records = sa.Table(
    "sync_held_records",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("raw_record", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_held_at", Timestamp(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_attempt_at", Timestamp(), nullable=False),
    sa.Column("released_at", Timestamp()),
    sa.Column("released_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
)
sa.Index(
    "uq_sync_held_waiting_key",
    sync_held_records.c.source,
    sync_held_records.c.entity,
    sync_held_records.c.record_key,
    unique=True,
    postgresql_where=sync_held_records.c.released_at.is_(None),
    sqlite_where=sync_held_records.c.released_at.is_(None),
)
sa.Index("ix_sync_held_records_released_by", sync_held_records.c.released_by_run_id)  # 0010

sync_leases = sa.Table(
    "sync_leases",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("entity", sa.String(100), primary_key=True),
    sa.Column("sync_run_id", Id),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", Timestamp(), nullable=False),
    sa.Column("heartbeat_at", Timestamp(), nullable=False),
)

# --- migration 0003: webhook inbox and rejections, backups -----------------------------------

webhook_inbox = sa.Table(
    "webhook_inbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(200), nullable=False),
    sa.Column("workflow_key", sa.String(100), nullable=False),
    sa.Column("execution_id", sa.String(100)),
    sa.Column("received_at", Timestamp(), nullable=False),
    sa.Column("origin", sa.String(20), nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("processed_at", Timestamp()),
    sa.Column("processed_by_run_id", Id, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    sa.Column("reason", sa.Text),
    sa.UniqueConstraint("delivery_id", name="uq_webhook_inbox_delivery"),
    sa.CheckConstraint("origin IN ('receiver', 'resync')", name="ck_webhook_inbox_origin"),
    sa.CheckConstraint(
        "status IN ('pending', 'processed', 'quarantined')", name="ck_webhook_inbox_status"
    ),
)
sa.Index("ix_webhook_inbox_pending", webhook_inbox.c.status, webhook_inbox.c.id)
sa.Index("ix_webhook_inbox_execution", webhook_inbox.c.workflow_key, webhook_inbox.c.execution_id)
sa.Index("ix_webhook_inbox_processed_by", webhook_inbox.c.processed_by_run_id)  # migration 0010

webhook_rejections = sa.Table(
    "webhook_rejections",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("received_at", Timestamp(), nullable=False),
    sa.Column("workflow_key", sa.String(100), nullable=False),
    sa.Column("delivery_id", sa.String(200)),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)
sa.Index("ix_webhook_rejections_received", webhook_rejections.c.received_at)

backups = sa.Table(
    "backups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
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
    sa.Column("verified_at", Timestamp()),
    sa.Column("backup_seconds", sa.Float),
    sa.Column("restore_seconds", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("pruned_at", Timestamp()),
    sa.CheckConstraint("kind IN ('full', 'inbox')", name="ck_backups_kind"),
    sa.CheckConstraint(
        "status IN ('running', 'created', 'verified', 'failed')", name="ck_backups_status"
    ),
)
sa.Index("ix_backups_created", backups.c.created_at)


# --- migration 0005: the sources this deployment has configured ----------------------------

sync_sources = sa.Table(
    "sync_sources",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("configured_since", Timestamp(), nullable=False),  # first seen with its settings
    sa.Column("checked_at", Timestamp(), nullable=False),
)

# --- migration 0005: circuit breakers shared by every process calling a source -------------

sync_circuit_breakers = sa.Table(
    "sync_circuit_breakers",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),  # closed | open | half-open
    sa.Column("fail_counter", sa.Integer, nullable=False, server_default="0"),
    sa.Column("success_counter", sa.Integer, nullable=False, server_default="0"),
    sa.Column("opened_at", Timestamp()),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

# --- migration 0007: the last quota reading of each rate-limited subject --------------------

sync_quota_readings = sa.Table(
    "sync_quota_readings",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("subject", sa.String(200), primary_key=True),  # e.g. "property 123456789"
    sa.Column("reading", Json, nullable=False),  # what the source last said was left
    sa.Column("read_at", Timestamp(), nullable=False),
)

# --- migration 0008: n8n executions the delivery-gap check has read ------------------------

n8n_checked_executions = sa.Table(
    "n8n_checked_executions",
    metadata,
    sa.Column("workflow_key", sa.String(100), primary_key=True),
    sa.Column("execution_id", sa.String(100), primary_key=True),
    # complete: every delivery it sent is in the inbox; failed: an error execution, reported;
    # resent: an error execution whose built payload the check put into the inbox
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("stopped_at", Timestamp()),
    sa.Column("checked_at", Timestamp(), nullable=False),
    sa.Column("reason", sa.Text),  # failed: the node it failed in and n8n's message
    sa.CheckConstraint(
        "status IN ('complete', 'failed', 'resent')", name="ck_n8n_checked_executions_status"
    ),
)
sa.Index("ix_n8n_checked_executions_checked", n8n_checked_executions.c.checked_at)

# --- migration 0009: reconciliation (docs/reconciliation.md) ---------------------------------
reconciliation_runs = sa.Table(
    "reconciliation_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("started_at", Timestamp(), nullable=False),
    sa.Column("finished_at", Timestamp()),
    sa.Column("status", sa.String(20), nullable=False),  # running | succeeded | failed
    sa.Column("summary", Json),  # entity → counts by kind and severity, rows on each side
    sa.Column("message", sa.Text),
)
sa.Index("ix_reconciliation_runs_source", reconciliation_runs.c.source, reconciliation_runs.c.id)

# One row per record that differs (or differed): reopened when a later reconciliation finds
# it different again, so a difference that does not change is never logged twice.
reconciliation_discrepancies = sa.Table(
    "reconciliation_discrepancies",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    # missing (in the source, not the warehouse) | extra | field_diff | status_mismatch |
    # conflict (both sides changed since the last sync; held by the sync for review)
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),  # high | medium | low
    sa.Column("fields", Json),  # the columns that differ
    sa.Column("source_values", Json),  # the record as each side holds it (null: absent)
    sa.Column("warehouse_values", Json),
    sa.Column("fingerprint", sa.String(32), nullable=False),  # of kind and both sides
    # open | resolved | ignored | gone (no longer different, nobody acted)
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("first_seen_at", Timestamp(), nullable=False),
    sa.Column("last_seen_at", Timestamp(), nullable=False),
    sa.Column("last_run_id", sa.BigInteger),  # the reconciliation run (null: a sync's conflict)
    sa.Column("ignored_until", Timestamp()),
    sa.Column("resolution", sa.String(20)),  # the action that closed it
    sa.Column("note", sa.Text),  # the reason given with ignore, or what a resolution did
    sa.Column("resolved_at", Timestamp()),
    sa.UniqueConstraint("source", "entity", "record_key", name="uq_reconciliation_record"),
)
sa.Index(
    "ix_reconciliation_discrepancies_status",
    reconciliation_discrepancies.c.status,
    reconciliation_discrepancies.c.severity,
)

# Every resolution action, one row per record: who, when, which record, before and after.
reconciliation_actions = sa.Table(
    "reconciliation_actions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("discrepancy_id", sa.BigInteger),
    sa.Column("before", Json),  # the warehouse row before the action (null: absent)
    sa.Column("after", Json),  # the warehouse row after it
    sa.Column("detail", sa.Text),
    sa.Column("dagster_run_id", sa.String(64)),
)
sa.Index("ix_reconciliation_actions_at", reconciliation_actions.c.at)

# Warehouse versions queued to be written back to the source (keep local, merge).
reconciliation_pushes = sa.Table(
    "reconciliation_pushes",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("record", Json, nullable=False),  # in the source's own field names
    sa.Column("action_id", sa.BigInteger),
    sa.Column("queued_at", Timestamp(), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | applied | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("applied_at", Timestamp()),
    sa.Column("error", sa.Text),
)
sa.Index("ix_reconciliation_pushes_status", reconciliation_pushes.c.status)

# A large entity table's merge state, packed (as last written whole, plus the rows changed
# since), with the generation that says it is still exact (warehouse/merge_state.py).
# PostgreSQL only fills it; the row exists per table.
sync_merge_state = sa.Table(
    "sync_merge_state",
    metadata,
    sa.Column("table_name", sa.String(100), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("relfilenode", sa.BigInteger),
    sa.Column("layout", sa.String(500)),
    sa.Column("row_count", sa.BigInteger),
    sa.Column("state", sa.LargeBinary),
    sa.Column("stored_at", Timestamp()),
    sa.Column("changes", sa.LargeBinary),  # rows changed since `state` was written whole
)
