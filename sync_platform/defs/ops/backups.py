"""Backups under the daemon: nightly verified full backups, hourly webhook-inbox backups,
a weekly restore drill timed against the RTO objective, and a manual restore job.

- `backup_warehouse` (create → verify by restoring → prune): nightly 03:00 UTC for the full
  warehouse; hourly (run config kind=inbox) for the push-only webhook inbox.
- `restore_drill`: Sundays 05:00 UTC, restores the newest full backup into a scratch database,
  checks every table, alerts when it fails or takes longer than `restore_rto_minutes`.
- `restore_warehouse`: manual (`dagster job execute … -j restore_warehouse -c config.yaml`),
  into a new database unless `overwrite_live` says otherwise.
Failures raise alerts (backup_failed, backup_verification_failed, restore_drill_failed,
restore_drill_slow); the missing-backup rule lives with the other rules (alerting/rules.py).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from sync_platform.alerting.store import raise_alert, resolve_alerts
from sync_platform.backups import service
from sync_platform.defs.ops.resources import BackupResource
from sync_platform.orchestration.automation import utc_schedule
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.tags import AREA_TAG

TAGS = {AREA_TAG: "backups"}


def _alert(warehouse: WarehouseResource, dedup_key: str, holds: bool, **alert) -> None:
    """Raise or resolve; when the warehouse itself is down the alert still reaches the log."""
    try:
        with warehouse.get_engine().begin() as connection:
            if holds:
                raise_alert(connection, dedup_key=dedup_key, **alert)
            else:
                resolve_alerts(connection, dedup_key, datetime.now(UTC))
    except Exception:  # the original failure matters more than the alert's
        if holds:
            dg.get_dagster_logger().error(f"ALERT {alert.get('type')}: {alert.get('message')}")


@contextmanager
def _alert_on_failure(
    warehouse: WarehouseResource,
    *,
    type: str,
    dedup_key: str,
    describe: Callable[[Exception], str],
    details: dict,
) -> Iterator[None]:
    """A high alert when the block fails (re-raising), its resolution when it succeeds."""
    try:
        yield
    except Exception as exc:
        _alert(
            warehouse,
            dedup_key,
            True,
            severity="high",
            type=type,
            message=describe(exc),
            details=details,
        )
        raise
    _alert(warehouse, dedup_key, False)


def _outcome_metadata(outcome: service.RestoreOutcome) -> dict:
    return {
        "backup_id": outcome.manifest.id,
        "target": outcome.target,
        "restore_seconds": dg.MetadataValue.float(outcome.restore_seconds),
        "verify_seconds": dg.MetadataValue.float(outcome.verify_seconds),
        "tables": len(outcome.manifest.table_counts),
        "rows": sum(outcome.manifest.table_counts.values()),
    }


class CreateBackupConfig(dg.Config):
    kind: str = Field(default="full", description="'full' (the warehouse) or 'inbox'")


@dg.op(tags=TAGS, out=dg.Out(str, description="the backup id"))
def create_backup(
    context: dg.OpExecutionContext,
    config: CreateBackupConfig,
    warehouse: WarehouseResource,
    backups: BackupResource,
) -> str:
    """Dump (one consistent snapshot), encrypt, store atomically, write the manifest."""
    with _alert_on_failure(
        warehouse,
        type="backup_failed",
        dedup_key=f"backup_failed:{config.kind}",
        describe=lambda exc: f"{config.kind} backup failed: {exc}",
        details={"run_id": context.run_id},
    ):
        manifest = service.create_backup(warehouse.url, backups.backup_config(), config.kind)
    context.add_output_metadata(
        {
            "backup_id": manifest.id,
            "kind": manifest.kind,
            "size_bytes": manifest.size_bytes,
            "backup_seconds": dg.MetadataValue.float(manifest.backup_seconds),
            "sha256": manifest.sha256,
            "encrypted": manifest.encrypted,
            "key_id": manifest.key_id or "",
            "rows": sum(manifest.table_counts.values()),
            "table_counts": dg.MetadataValue.json(manifest.table_counts),
            "tool_versions": dg.MetadataValue.json(manifest.tool_versions),
        }
    )
    return manifest.id


@dg.op(tags=TAGS, out=dg.Out(str, description="the verified backup id"))
def verify_backup(
    context: dg.OpExecutionContext,
    backup_id: str,
    warehouse: WarehouseResource,
    backups: BackupResource,
) -> str:
    """Restore into a throwaway database, compare every table with the manifest."""
    with _alert_on_failure(
        warehouse,
        type="backup_verification_failed",
        dedup_key="backup_verification_failed",
        describe=lambda exc: f"backup {backup_id} did not restore to what it holds: {exc}",
        details={"backup_id": backup_id, "run_id": context.run_id},
    ):
        outcome = service.verify_backup(warehouse.url, backups.backup_config(), backup_id)
    context.add_output_metadata(_outcome_metadata(outcome))
    return backup_id


@dg.op(tags=TAGS)
def prune_backups(
    context: dg.OpExecutionContext,
    verified_backup_id: str,
    warehouse: WarehouseResource,
    backups: BackupResource,
) -> None:
    """Apply retention (after a verified backup exists, never before)."""
    pruned = service.prune_backups(warehouse.url, backups.backup_config())
    context.log.info(f"pruned {len(pruned)} backup(s): {', '.join(pruned) or 'none'}")
    context.add_output_metadata({"pruned": len(pruned), "pruned_ids": ", ".join(pruned)})


@dg.job(
    tags=TAGS,
    description="Back up the warehouse (or, with kind=inbox, the webhook inbox), verify the "
    "backup by restoring it, then prune by retention.",
)
def backup_warehouse():
    prune_backups(verify_backup(create_backup()))


class RestoreConfig(dg.Config):
    backup_id: str = Field(default="", description="the backup to restore; empty: newest full")
    target_url: str = Field(
        default="", description="where to restore; empty: a new database beside the live one"
    )
    overwrite_live: bool = Field(default=False, description="replace the live warehouse")


@dg.op(tags=TAGS)
def restore_backup(
    context: dg.OpExecutionContext,
    config: RestoreConfig,
    warehouse: WarehouseResource,
    backups: BackupResource,
) -> None:
    """Restore a backup after its checksum and authentication passed; compare the result."""
    backup_id = config.backup_id or service.latest_backup_id(warehouse.url)
    if not backup_id:
        raise dg.Failure("there is no backup to restore (`sync-platform backup list`)")
    outcome = service.restore_backup(
        warehouse.url,
        backups.backup_config(),
        backup_id,
        target_url=config.target_url or None,
        overwrite_live=config.overwrite_live,
    )
    context.add_output_metadata(_outcome_metadata(outcome))


@dg.job(tags=TAGS, description="Restore a backup into a new database (or, explicitly, live).")
def restore_warehouse():
    restore_backup()


@dg.op(tags=TAGS)
def run_restore_drill(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, backups: BackupResource
) -> None:
    """Restore the newest full backup into scratch, time it against the RTO objective."""
    with warehouse.get_engine().connect() as connection:
        rto_minutes = service.RESTORE_RTO_MINUTES.read(connection)
    backup_id = service.latest_backup_id(warehouse.url)
    with _alert_on_failure(
        warehouse,
        type="restore_drill_failed",
        dedup_key="restore_drill_failed",
        describe=lambda exc: f"the restore drill failed (backup {backup_id or 'none'}): {exc}",
        details={"backup_id": backup_id, "run_id": context.run_id},
    ):
        if not backup_id:
            raise dg.Failure("no full backup to drill with: is backup_warehouse running?")
        outcome = service.verify_backup(warehouse.url, backups.backup_config(), backup_id)
    minutes = outcome.restore_seconds / 60
    slow = minutes > rto_minutes
    _alert(
        warehouse,
        "restore_drill_slow",
        slow,
        severity="high",
        type="restore_drill_slow",
        message=f"restoring backup {backup_id} took {minutes:.1f} min, over the recovery time "
        f"objective of {rto_minutes:g} min: see docs/backup_and_recovery.md",
        details={"backup_id": backup_id, "restore_seconds": outcome.restore_seconds},
    )
    context.add_output_metadata(
        {
            **_outcome_metadata(outcome),
            "rto_minutes": dg.MetadataValue.float(float(rto_minutes)),
            "within_rto": not slow,
        }
    )


@dg.job(tags=TAGS, description="Weekly: restore the newest backup into scratch, check, time.")
def restore_drill():
    run_restore_drill()


backup_warehouse_nightly = utc_schedule(
    "backup_warehouse_nightly",
    backup_warehouse,
    "0 3 * * *",
    description="Nightly 03:00 UTC: an encrypted, verified full backup of the warehouse.",
    run_config={"ops": {"create_backup": {"config": {"kind": "full"}}}},
)
backup_webhook_inbox_hourly = utc_schedule(
    "backup_webhook_inbox_hourly",
    backup_warehouse,
    "30 * * * *",
    description="Hourly at :30: the webhook inbox alone, so deliveries not yet processed "
    "survive losing the warehouse between nightly backups.",
    run_config={"ops": {"create_backup": {"config": {"kind": "inbox"}}}},
    tags={"sync_platform/backup_kind": "inbox"},
)
restore_drill_weekly = utc_schedule(
    "restore_drill_weekly",
    restore_drill,
    "0 5 * * 0",
    description="Sundays 05:00 UTC: the newest backup restored into scratch and checked, so a "
    "backup that cannot be restored is found before it is needed.",
)
