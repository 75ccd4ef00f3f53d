"""`retention_cleanup`: what grows without bound is trimmed weekly, each by its own runtime
setting.

- Dagster's runs and their event logs: finished runs older than `retention_dagster_runs_days`,
  except a run that still holds the latest materialization of an asset or of an asset
  partition (deleting it would make the asset, or a GA4 day, look never synced).
- The warehouse's record log, processed webhook deliveries, resolved gaps and quarantined
  records beyond their retention.
- Then the audit: entity syncs (`sync_runs`) older than `retention_audit_days`, with their
  record log, errors and conflicts, and run-level errors as old; the newest 100 syncs of each
  entity and every sync something open still points at (`audit.still_needed`: running, the
  current cursor's, an open or unrecoverable gap's, unresolved quarantine's, a refused
  delivery's, a record's latest conflict) stay. It runs last, so rows the purges above just
  removed no longer hold a sync back.
Synced data, open and unrecoverable gaps, pending or quarantined deliveries, alerts and
backups are never purged here.
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from sync_platform.engine import audit, gaps
from sync_platform.inbox import store as inbox_store
from sync_platform.orchestration.automation import utc_schedule
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import AREA_TAG
from sync_platform.runtime_config import positive_int, setting

TAGS = {AREA_TAG: "retention"}
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
RUNS_PER_PAGE = 200

DAGSTER_RUNS_DAYS = setting(
    "retention_dagster_runs_days",
    30,
    positive_int,
    "finished Dagster runs (and their event logs) older than this are deleted, except runs "
    "holding an asset's or partition's latest materialization",
)
RECORD_LOG_DAYS = setting(
    "retention_record_log_days", 90, positive_int, "days sync_record_log rows are kept"
)
INBOX_PROCESSED_DAYS = setting(
    "retention_inbox_processed_days",
    30,
    positive_int,
    "days processed webhook deliveries stay in the inbox (their events stay in the event "
    "tables; keep it longer than n8n_gap_lookback_hours)",
)
RESOLVED_GAPS_DAYS = setting(
    "retention_resolved_gaps_days", 90, positive_int, "days resolved sync_gaps rows are kept"
)
QUARANTINE_DAYS = setting(
    "retention_quarantine_days", 180, positive_int, "days sync_quarantine rows are kept"
)
AUDIT_DAYS = setting(
    "retention_audit_days",
    365,
    positive_int,
    "days entity syncs (sync_runs, with their record log, errors and conflicts) are kept; "
    "the newest 100 of each entity, and syncs an open gap, unresolved quarantine, refused "
    "delivery, current cursor or latest conflict points at, stay longer",
)


def holds_latest_materialization(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether any asset (partition) this run materialized has no later materialization."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        key, partition = event.asset_key, event.partition
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        if latest and latest[0].run_id == run_id:
            return True
    return False


def purge_dagster_runs(
    instance: dg.DagsterInstance, before: datetime, page_size: int = RUNS_PER_PAGE
) -> dict[str, int]:
    """Delete finished runs last updated before `before` that no longer hold a latest
    materialization; returns {"runs_deleted", "runs_kept"}. Pages on from the last run
    *kept* (a deleted run cannot be a cursor)."""
    counts = {"runs_deleted": 0, "runs_kept": 0}
    cursor = None
    while True:
        page = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, updated_before=before),
            limit=page_size,
            cursor=cursor,
        )
        if not page:
            return counts
        for record in page:
            run_id = record.dagster_run.run_id
            if holds_latest_materialization(instance, run_id):
                counts["runs_kept"] += 1
                cursor = run_id
            else:
                instance.delete_run(run_id)
                counts["runs_deleted"] += 1


@dg.op(tags=TAGS)
def clean_up(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    """Trim Dagster's runs and the warehouse's growing platform tables by retention."""
    started = time.monotonic()
    now = datetime.now(UTC)
    engine = warehouse.ready_engine()
    with engine.connect() as connection:
        days = {
            setting_.key: setting_.read(connection)
            for setting_ in (
                DAGSTER_RUNS_DAYS,
                RECORD_LOG_DAYS,
                INBOX_PROCESSED_DAYS,
                RESOLVED_GAPS_DAYS,
                QUARANTINE_DAYS,
                AUDIT_DAYS,
            )
        }

    def cutoff(setting_) -> datetime:
        return now - timedelta(days=days[setting_.key])

    figures = purge_dagster_runs(context.instance, cutoff(DAGSTER_RUNS_DAYS))
    figures |= {
        "record_log_deleted": audit.purge_record_log(engine, cutoff(RECORD_LOG_DAYS)),
        "inbox_deleted": inbox_store.purge_processed(engine, cutoff(INBOX_PROCESSED_DAYS)),
        "resolved_gaps_deleted": gaps.purge_resolved(engine, cutoff(RESOLVED_GAPS_DAYS)),
        "quarantine_deleted": audit.purge_quarantine(engine, cutoff(QUARANTINE_DAYS)),
    }
    figures |= audit.purge_audit(engine, cutoff(AUDIT_DAYS))  # last: see the module's doc
    context.log.info(", ".join(f"{name} {count}" for name, count in figures.items()))
    context.add_output_metadata(
        {**figures, "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3))}
    )


@dg.job(tags=TAGS, description="Weekly: purge old Dagster runs and platform rows by retention.")
def retention_cleanup():
    clean_up()


retention_cleanup_weekly = utc_schedule(
    "retention_cleanup_weekly",
    retention_cleanup,
    "0 4 * * 6",
    description="Saturdays 04:00 UTC: old Dagster runs and platform rows past their retention "
    "(docs/operations.md, Retention).",
)
