"""The audit trail: one `sync_runs` row per entity sync, plus its record log, quarantine
and errors.

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
    sync_quarantine,
    sync_record_log,
    sync_runs,
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
) -> int:
    with engine.begin() as connection:
        return connection.execute(
            sa.insert(sync_runs)
            .values(
                source=source,
                entity=entity,
                trigger=trigger,
                dagster_run_id=dagster_run_id,
                partition_key=partition_key,
                started_at=utcnow(),
                status="running",
            )
            .returning(sync_runs.c.id)
        ).scalar_one()


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
