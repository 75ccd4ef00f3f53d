"""Referential order: rows whose parent is not in the warehouse yet are held, not loaded.

A variant that names a product the warehouse does not have (yet) would be a dangling row.
Instead it waits in `sync_held_records` with the reason, and every later sync of its
entity tries it again (its parent may have arrived meanwhile); once the parent exists it is
loaded and released with the run that loaded it. Held keys are neither soft-deleted nor
counted as gaps: they are known, recorded, and retried.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.mapping import record_key_expr
from sync_platform.warehouse import bulk
from sync_platform.warehouse.entity_tables import DELETED_AT
from sync_platform.warehouse.platform_tables import sync_held_records

HELD_REASON = "_held_reason"


def source_shaped(row: dict[str, Any], entity: EntityConfig) -> dict[str, Any]:
    """A typed row turned back into the source's field names (text values), so a held
    record is mapped again by the same rules when it is retried."""
    record: dict[str, Any] = {}
    for column, spec in entity.fields.items():
        value = row.get(column)
        text = (
            None
            if value is None
            else (value.isoformat() if hasattr(value, "isoformat") else str(value))
        )
        target = record
        *parents, leaf = spec.source.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = text
    return record


def waiting_records(connection: sa.Connection, source: str, entity: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        sa.select(sync_held_records.c.raw_record).where(
            sync_held_records.c.source == source,
            sync_held_records.c.entity == entity,
            sync_held_records.c.released_at.is_(None),
        )
    ).scalars()
    return [json.loads(raw) for raw in rows]


def split_orphans(
    connection: sa.Connection, frame: pl.DataFrame, references: dict[str, tuple[str, str]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows whose every reference resolves, rows held with a `_held_reason`)."""
    if not references or frame.height == 0:
        return frame, frame.clear().with_columns(pl.lit(None, pl.String).alias(HELD_REASON))
    reasons = []
    for column, (parent_table, parent_column) in references.items():
        parent = sa.table(parent_table, sa.column(parent_column), sa.column(DELETED_AT))
        present = bulk.select_frame(
            connection,
            sa.select(sa.cast(parent.c[parent_column], sa.Text).label("key"))
            .where(parent.c[DELETED_AT].is_(None))
            .distinct(),
            {"key": pl.String},
        ).get_column("key")
        value = pl.col(column).cast(pl.String)
        reasons.append(
            pl.when(value.is_not_null() & ~value.is_in(present.implode())).then(
                pl.format(
                    f"{column}: parent {parent_table}.{parent_column} = '{{}}' is not "
                    "in the warehouse yet",
                    value,
                )
            )
        )
    flagged = frame.with_columns(pl.coalesce(reasons).alias(HELD_REASON))
    orphaned = pl.col(HELD_REASON).is_not_null()
    return flagged.filter(~orphaned).drop(HELD_REASON), flagged.filter(orphaned)


def hold(
    connection: sa.Connection,
    orphans: pl.DataFrame,
    entity: EntityConfig,
    *,
    source: str,
    now: datetime,
) -> int:
    """Record (or re-record, counting the attempt) every orphan as waiting."""
    if orphans.height == 0:
        return 0
    keyed = orphans.with_columns(record_key_expr(entity.key).alias("_key"))
    waiting = dict(
        connection.execute(
            sa.select(sync_held_records.c.record_key, sync_held_records.c.id).where(
                sync_held_records.c.source == source,
                sync_held_records.c.entity == entity.name,
                sync_held_records.c.released_at.is_(None),
            )
        ).all()
    )
    for row in keyed.iter_rows(named=True):
        raw = json.dumps(source_shaped(row, entity), sort_keys=True)
        if row["_key"] in waiting:
            connection.execute(
                sa.update(sync_held_records)
                .where(sync_held_records.c.id == waiting[row["_key"]])
                .values(
                    raw_record=raw,
                    reason=row[HELD_REASON],
                    attempts=sync_held_records.c.attempts + 1,
                    last_attempt_at=now,
                )
            )
        else:
            connection.execute(
                sa.insert(sync_held_records).values(
                    source=source,
                    entity=entity.name,
                    record_key=row["_key"],
                    raw_record=raw,
                    reason=row[HELD_REASON],
                    first_held_at=now,
                    last_attempt_at=now,
                )
            )
    return keyed.height


def release(
    connection: sa.Connection,
    keys: list[str],
    *,
    source: str,
    entity: str,
    sync_run_id: int,
    now: datetime,
) -> int:
    """Mark waiting records as done: loaded by this run, or gone from a complete snapshot."""
    if not keys:
        return 0
    result = connection.execute(
        sa.update(sync_held_records)
        .where(
            sync_held_records.c.source == source,
            sync_held_records.c.entity == entity,
            sync_held_records.c.released_at.is_(None),
            sync_held_records.c.record_key.in_(keys),
        )
        .values(released_at=now, released_by_run_id=sync_run_id)
    )
    return result.rowcount


def waiting_keys(connection: sa.Connection, source: str, entity: str) -> list[str]:
    return list(
        connection.execute(
            sa.select(sync_held_records.c.record_key).where(
                sync_held_records.c.source == source,
                sync_held_records.c.entity == entity,
                sync_held_records.c.released_at.is_(None),
            )
        ).scalars()
    )
