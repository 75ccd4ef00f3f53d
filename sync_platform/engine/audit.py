"""The audit trail: one `sync_runs` row per entity sync, plus its record log, quarantine,
conflicts and errors; and their retention (`purge_*`).

The audit row is inserted (status 'running') in its own transaction before any work, so a
run that dies still leaves a trace; its counts are written inside the merge transaction,
and its end state after verification.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from sync_platform.engine.ports import RejectedRecord
from sync_platform.errors import categorize
from sync_platform.warehouse import bulk
from sync_platform.warehouse.platform_tables import (
    sync_conflicts,
    sync_errors,
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    sync_runs,
    sync_state,
    webhook_inbox,
)

TRIGGERS = ("scheduled", "manual", "sensor", "resync", "backfill")


def utcnow() -> datetime:
    return datetime.now(UTC)


def start_sync_run(
    engine: sa.Engine,
    *,
    source: str,
    entity: str,
    trigger: str,
    dagster_run_id: str | None,
    partition_key: str | None,
    kind: str | None = None,
) -> int:
    with engine.begin() as connection:
        return connection.execute(
            sa.insert(sync_runs)
            .values(
                source=source,
                entity=entity,
                trigger=trigger,
                kind=kind,
                dagster_run_id=dagster_run_id,
                partition_key=partition_key,
                started_at=utcnow(),
                status="running",
            )
            .returning(sync_runs.c.id)
        ).scalar_one()


def last_good_start(
    connection: sa.Connection, source: str, entity: str, kind: str | tuple[str, ...] | None = None
) -> datetime | None:
    """When the entity's latest sync that did not fail (of this `kind` or kinds, when given)
    started; a sync still running does not count."""
    query = sa.select(sync_runs.c.started_at).where(
        sync_runs.c.source == source,
        sync_runs.c.entity == entity,
        sync_runs.c.status.in_(("succeeded", "warning")),
    )
    if kind is not None:
        query = query.where(sync_runs.c.kind.in_((kind,) if isinstance(kind, str) else kind))
    started = connection.execute(query.order_by(sync_runs.c.started_at.desc()).limit(1)).scalar()
    return as_utc(started)


def update_sync_run(connection: sa.Connection, sync_run_id: int, **values: Any) -> None:
    connection.execute(sa.update(sync_runs).where(sync_runs.c.id == sync_run_id).values(values))


def write_quarantine(
    connection: sa.Connection,
    rejects: Iterable[RejectedRecord],
    *,
    sync_run_id: int,
    source: str,
    entity: str,
    now: datetime,
) -> int:
    rows = [
        {
            "sync_run_id": sync_run_id,
            "source": source,
            "entity": entity,
            "record_key": reject.record_key,
            "raw_record": json.dumps(reject.raw, default=str, sort_keys=True),
            "reason": reject.reason,
            "quarantined_at": now,
        }
        for reject in rejects
    ]
    if rows:
        connection.execute(sa.insert(sync_quarantine), rows)
    return len(rows)


def write_record_log(
    connection: sa.Connection,
    changes: pl.DataFrame,
    rejects: list[RejectedRecord],
    *,
    sync_run_id: int,
    entity: str,
    now: datetime,
    limit: int,
) -> bool:
    """Log written and quarantined records, up to `limit`; True when the log was cut short."""
    quarantined = pl.DataFrame(
        {
            "record_key": [reject.record_key or "" for reject in rejects],
            "operation": ["quarantine"] * len(rejects),
            "result": ["failure"] * len(rejects),
            "message": [reject.reason for reject in rejects],
        },
        schema={name: pl.String for name in ("record_key", "operation", "result", "message")},
    )
    written = changes.with_columns(
        pl.lit("success").alias("result"), pl.lit(None, dtype=pl.String).alias("message")
    )
    log = pl.concat([quarantined, written])
    truncated = log.height > limit
    log = log.head(limit).with_columns(
        pl.lit(sync_run_id, dtype=pl.Int64).alias("sync_run_id"),
        pl.lit(entity).alias("entity"),
        pl.lit(now).alias("logged_at"),
    )
    bulk.insert_frame(connection, sync_record_log.name, log)
    return truncated


def record_error(
    engine_or_connection: sa.Engine | sa.Connection,
    exc: BaseException,
    *,
    sync_run_id: int | None = None,
    dagster_run_id: str | None = None,
    source: str | None = None,
    entity: str | None = None,
) -> str:
    """Store an error with its category and stack; returns the category."""
    category = str(categorize(exc))
    row = {
        "sync_run_id": sync_run_id,
        "dagster_run_id": dagster_run_id,
        "source": source,
        "entity": entity,
        "category": category,
        "message": str(exc),
        "stack": "".join(traceback.format_exception(exc)),
        "record_key": getattr(exc, "record_key", None),
        "occurred_at": utcnow(),
    }
    if isinstance(engine_or_connection, sa.Engine):
        with engine_or_connection.begin() as connection:
            connection.execute(sa.insert(sync_errors).values(row))
    else:
        engine_or_connection.execute(sa.insert(sync_errors).values(row))
    return category


def record_run_failure(
    connection: sa.Connection, *, dagster_run_id: str, source: str | None, message: str
) -> bool:
    """Record a failed run as a whole (it may have died before any sync started, so without
    an audit row of its own), once per run; False when it was already recorded."""
    already = connection.execute(
        sa.select(sa.func.count())
        .select_from(sync_errors)
        .where(sync_errors.c.dagster_run_id == dagster_run_id, sync_errors.c.entity.is_(None))
    ).scalar()
    if already:
        return False
    connection.execute(
        sa.insert(sync_errors).values(
            dagster_run_id=dagster_run_id,
            source=source,
            category="unknown",
            message=message,
            occurred_at=utcnow(),
        )
    )
    return True


def record_unstarted_syncs(
    connection: sa.Connection,
    entities: list[tuple[str, str]],
    *,
    dagster_run_id: str,
    trigger: str,
    message: str,
    now: datetime,
) -> list[tuple[str, str]]:
    """A failed sync in the audit for every (source, entity) a failed run was to sync but
    whose sync never started (the run died on its configuration, the database, a lost
    worker), so failures count per source and entity whatever launched the run. Returns the
    entities recorded (those with an audit row of their own are left alone)."""
    started = set(
        connection.execute(
            sa.select(sync_runs.c.source, sync_runs.c.entity).where(
                sync_runs.c.dagster_run_id == dagster_run_id
            )
        ).all()
    )
    missing = [pair for pair in entities if pair not in started]
    if missing:
        connection.execute(
            sa.insert(sync_runs),
            [
                {
                    "source": source,
                    "entity": entity,
                    "trigger": trigger if trigger in TRIGGERS else "manual",
                    "dagster_run_id": dagster_run_id,
                    "started_at": now,
                    "finished_at": now,
                    "status": "failed",
                    "failed": 0,
                    "message": message[:2000],
                }
                for source, entity in missing
            ],
        )
    return missing


def write_conflicts(
    connection: sa.Connection,
    conflicts: list[dict],
    *,
    sync_run_id: int,
    source: str,
    entity: str,
    now: datetime,
) -> int:
    if conflicts:
        connection.execute(
            sa.insert(sync_conflicts),
            [
                {
                    **conflict,
                    "sync_run_id": sync_run_id,
                    "source": source,
                    "entity": entity,
                    "detected_at": now,
                }
                for conflict in conflicts
            ],
        )
    return len(conflicts)


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unreported_conflicts(
    connection: sa.Connection, conflicts: list[dict], *, source: str, entity: str
) -> list[dict]:
    """The conflicts not already logged: a source that keeps serving the same stale version
    of a row is one conflict, not one per run. A conflict is new when its record's latest
    logged conflict differs in kind, resolution or either timestamp."""
    if not conflicts:
        return []
    keys = sorted({conflict["record_key"] for conflict in conflicts})
    latest: dict[str, tuple] = {}
    for start in range(0, len(keys), 500):
        rows = connection.execute(
            sa.select(
                sync_conflicts.c.record_key,
                sync_conflicts.c.kind,
                sync_conflicts.c.resolution,
                sync_conflicts.c.incoming_timestamp,
                sync_conflicts.c.warehouse_timestamp,
            )
            .where(
                sync_conflicts.c.source == source,
                sync_conflicts.c.entity == entity,
                sync_conflicts.c.record_key.in_(keys[start : start + 500]),
            )
            .order_by(sync_conflicts.c.id)
        )
        for row in rows:
            latest[row.record_key] = (
                row.kind,
                row.resolution,
                as_utc(row.incoming_timestamp),
                as_utc(row.warehouse_timestamp),
            )

    def seen(conflict: dict) -> bool:
        return latest.get(conflict["record_key"]) == (
            conflict["kind"],
            conflict["resolution"],
            as_utc(conflict["incoming_timestamp"]),
            as_utc(conflict["warehouse_timestamp"]),
        )

    return [conflict for conflict in conflicts if not seen(conflict)]


def purge_record_log(engine: sa.Engine, before: datetime) -> int:
    """Retention: the record log of syncs logged before `before` (counts stay in sync_runs)."""
    return bulk.delete_in_batches(engine, sync_record_log, sync_record_log.c.logged_at < before)


def purge_quarantine(engine: sa.Engine, before: datetime) -> int:
    """Retention: quarantined records older than `before`."""
    return bulk.delete_in_batches(
        engine, sync_quarantine, sync_quarantine.c.quarantined_at < before
    )


# The newest syncs of each entity always stay, whatever their age: the alert rules and the
# asset checks judge a sync against the ones before it (consecutive failures, the trailing
# median, the volume check's trailing syncs of the same kind among the latest 100 it scans).
AUDIT_HISTORY_KEPT = 100
# Per-run detail deleted with its sync (the record log, errors and conflicts cascade).
SYNC_DETAIL = (sync_record_log, sync_errors, sync_conflicts)


def still_needed(run: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """A sync that something open or current still points at, which retention keeps: one
    still running; the sync that wrote an entity's current cursor (`sync_state`); the one that
    found a gap still open or unrecoverable; one whose quarantined records are unresolved or
    whose refused webhook deliveries (`quarantined`) wait in the inbox; the one holding the
    latest logged conflict of a record (deleting it would log the same conflict again)."""
    later_conflict = sync_conflicts.alias("later_conflict")
    return sa.or_(
        sync_runs.c.status == "running",
        sa.exists().where(sync_state.c.sync_run_id == run),
        sa.exists().where(
            sync_gaps.c.detected_by_run_id == run,
            sync_gaps.c.status.in_(("open", "unrecoverable")),
        ),
        sa.exists().where(
            sync_quarantine.c.sync_run_id == run, sync_quarantine.c.resolved_at.is_(None)
        ),
        sa.exists().where(
            webhook_inbox.c.processed_by_run_id == run, webhook_inbox.c.status == "quarantined"
        ),
        sa.exists().where(
            sync_conflicts.c.sync_run_id == run,
            ~sa.exists().where(
                later_conflict.c.source == sync_conflicts.c.source,
                later_conflict.c.entity == sync_conflicts.c.entity,
                later_conflict.c.record_key == sync_conflicts.c.record_key,
                later_conflict.c.id > sync_conflicts.c.id,
            ),
        ),
    )


def _oldest_kept(connection: sa.Connection, keep_latest: int) -> dict[tuple[str, str], int]:
    """Per (source, entity) with more than `keep_latest` syncs, the id of the oldest of its
    newest `keep_latest` (entities with fewer keep every sync)."""
    found = {}
    for source, entity in connection.execute(
        sa.select(sync_runs.c.source, sync_runs.c.entity).distinct()
    ).all():
        oldest = connection.execute(
            sa.select(sync_runs.c.id)
            .where(sync_runs.c.source == source, sync_runs.c.entity == entity)
            .order_by(sync_runs.c.id.desc())
            .offset(keep_latest - 1)
            .limit(1)
        ).scalar()
        if oldest is not None:
            found[(source, entity)] = oldest
    return found


def purge_audit(
    engine: sa.Engine,
    before: datetime,
    *,
    keep_latest: int = AUDIT_HISTORY_KEPT,
    batch_size: int = 1000,
    detail_batch_size: int = 50_000,
) -> dict[str, int]:
    """Retention: entity syncs started before `before`, with their record log, errors and
    conflicts, except the newest `keep_latest` of each entity and those `still_needed`; and
    run-level errors (a failed Dagster run, no sync of its own) that occurred before it.

    Syncs go `batch_size` at a time: first their detail (in batches of `detail_batch_size`,
    each its own transaction), then the syncs themselves, whose remaining references (resolved
    gaps, processed deliveries, released held records, resolved quarantine) are set to null by
    their foreign keys. Returns the counts, with `audit_runs_kept`: syncs older than `before`
    that stay."""
    counts = {
        "audit_runs_deleted": 0,
        "audit_runs_kept": 0,
        "audit_record_log_deleted": 0,
        "audit_errors_deleted": 0,
        "audit_conflicts_deleted": 0,
    }
    before = as_utc(before)
    with engine.connect() as connection:
        oldest_kept = _oldest_kept(connection, keep_latest)
    for (source, entity), oldest in sorted(oldest_kept.items()):
        purgeable = sa.and_(
            sync_runs.c.source == source,
            sync_runs.c.entity == entity,
            sync_runs.c.id < oldest,
            sync_runs.c.started_at < before,
            ~still_needed(sync_runs.c.id),
        )
        while True:
            with engine.connect() as connection:
                ids = list(
                    connection.execute(
                        sa.select(sync_runs.c.id)
                        .where(purgeable)
                        .order_by(sync_runs.c.id)
                        .limit(batch_size)
                    ).scalars()
                )
            if not ids:
                break
            # No second look before deleting: what keeps a sync (a gap it found, a cursor it
            # wrote, …) is only ever written by that sync, so an old one cannot gain it now.
            for table in SYNC_DETAIL:
                counts[f"audit_{_DETAIL_NAMES[table.name]}_deleted"] += bulk.delete_in_batches(
                    engine, table, table.c.sync_run_id.in_(ids), detail_batch_size
                )
            with engine.begin() as connection:
                counts["audit_runs_deleted"] += connection.execute(
                    sa.delete(sync_runs).where(sync_runs.c.id.in_(ids))
                ).rowcount
            if len(ids) < batch_size:
                break
    counts["audit_errors_deleted"] += bulk.delete_in_batches(
        engine,
        sync_errors,
        sync_errors.c.sync_run_id.is_(None) & (sync_errors.c.occurred_at < before),
        detail_batch_size,
    )
    with engine.connect() as connection:
        counts["audit_runs_kept"] = connection.execute(
            sa.select(sa.func.count()).where(sync_runs.c.started_at < before)
        ).scalar_one()
    return counts


_DETAIL_NAMES = {
    sync_record_log.name: "record_log",
    sync_errors.name: "errors",
    sync_conflicts.name: "conflicts",
}
