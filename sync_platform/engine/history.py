"""The audit read back: the entity syncs (`sync_runs`) an operator asks for by time, source,
entity, status or record key, newest first, as rows ready for a table, CSV or JSON
(`sync-platform runs`).

A record key is not a column of `sync_runs`: which runs touched a key is read from the
tables that record keys per run (`KEY_TABLES` in `runs_query`): the record log (inserted,
updated, soft-deleted and quarantined records, at most `record_log_limit` per sync and
kept `retention_record_log_days`), quarantine, conflicts, gaps (opened by / closed by the
run) and errors that name a record. A sync that read a record and found it unchanged writes
no key anywhere, so it is not found by the key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.engine.audit import as_utc
from sync_platform.warehouse.platform_tables import (
    sync_conflicts,
    sync_errors,
    sync_gaps,
    sync_quarantine,
    sync_record_log,
    sync_runs,
)

STATUSES = ("running", "succeeded", "warning", "failed")

# The columns every format shows, in order (`touched` is added when a key is asked for).
COLUMNS = (
    "id",
    "source",
    "entity",
    "trigger",
    "kind",
    "status",
    "started_at",
    "finished_at",
    "seconds",
    "fetched",
    "inserted",
    "updated",
    "unchanged",
    "soft_deleted",
    "quarantined",
    "failed",
    "verification",
    "source_count",
    "warehouse_count",
    "gap_count",
    "rows_per_second",
    "partition_key",
    "dagster_run_id",
    "error_counts",
    "phase_seconds",
    "message",
)


@dataclass(frozen=True)
class RunFilter:
    """What to list; empty tuples and None mean "any". `since` is inclusive, `until`
    exclusive, both on the run's start and timezone-aware."""

    since: datetime | None = None
    until: datetime | None = None
    sources: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    key: str | None = None


def audited_entities(connection: sa.Connection) -> set[tuple[str, str]]:
    """Every (source, entity) the audit holds syncs of (a removed source's history too)."""
    return set(connection.execute(sa.select(sync_runs.c.source, sync_runs.c.entity).distinct()))


def _runs_touching(key: str, entities: Collection[str]) -> sa.CompoundSelect:
    """Ids of the runs that wrote, quarantined, conflicted on, opened or closed a gap of, or
    failed on this record key. The record log is asked by (entity, key), its index."""
    return sa.union(
        sa.select(sync_record_log.c.sync_run_id).where(
            sync_record_log.c.entity.in_(sorted(entities)), sync_record_log.c.record_key == key
        ),
        sa.select(sync_quarantine.c.sync_run_id).where(sync_quarantine.c.record_key == key),
        sa.select(sync_conflicts.c.sync_run_id).where(sync_conflicts.c.record_key == key),
        sa.select(sync_gaps.c.detected_by_run_id).where(sync_gaps.c.record_key == key),
        sa.select(sync_gaps.c.resolved_by_run_id).where(sync_gaps.c.record_key == key),
        sa.select(sync_errors.c.sync_run_id).where(sync_errors.c.record_key == key),
    )


def _touch_columns(key: str) -> list[sa.ColumnElement]:
    """Per run, how it touched the key (correlated to the run's row)."""
    run = sync_runs.c.id

    def logged(aggregate):
        return (
            sa.select(aggregate(sync_record_log.c.operation))
            .where(sync_record_log.c.sync_run_id == run, sync_record_log.c.record_key == key)
            .scalar_subquery()
        )

    def exists(table: sa.Table, column: sa.Column, *more) -> sa.ColumnElement:
        return sa.exists().where(column == run, table.c.record_key == key, *more)

    conflict = (
        sa.select(sa.func.min(sync_conflicts.c.kind + " → " + sync_conflicts.c.resolution))
        .where(sync_conflicts.c.sync_run_id == run, sync_conflicts.c.record_key == key)
        .scalar_subquery()
    )
    return [
        logged(sa.func.min).label("_logged_first"),
        logged(sa.func.max).label("_logged_last"),
        exists(sync_quarantine, sync_quarantine.c.sync_run_id).label("_quarantined"),
        conflict.label("_conflict"),
        exists(sync_gaps, sync_gaps.c.detected_by_run_id).label("_gap_opened"),
        exists(sync_gaps, sync_gaps.c.resolved_by_run_id).label("_gap_closed"),
        exists(sync_errors, sync_errors.c.sync_run_id).label("_error"),
    ]


def runs_query(
    selection: RunFilter, all_entities: Collection[str], limit: int | None = None
) -> sa.Select:
    """The runs matching `selection`, newest first; `all_entities`: the entity names the
    record log may hold the key under (the selection's entities when it names some)."""
    columns = [sync_runs.c[name] for name in COLUMNS if name != "seconds"]
    query = sa.select(*columns)
    if selection.since is not None:
        query = query.where(sync_runs.c.started_at >= as_utc(selection.since))
    if selection.until is not None:
        query = query.where(sync_runs.c.started_at < as_utc(selection.until))
    if selection.sources:
        query = query.where(sync_runs.c.source.in_(selection.sources))
    if selection.entities:
        query = query.where(sync_runs.c.entity.in_(selection.entities))
    if selection.statuses:
        query = query.where(sync_runs.c.status.in_(selection.statuses))
    if selection.key is not None:
        entities = selection.entities or tuple(all_entities)
        query = query.add_columns(*_touch_columns(selection.key)).where(
            sync_runs.c.id.in_(_runs_touching(selection.key, entities))
        )
    query = query.order_by(sync_runs.c.id.desc())
    return query if limit is None else query.limit(limit)


def how_touched(row: Mapping[str, Any]) -> list[str]:
    """What a run did to the key asked for, from `_touch_columns` (e.g. ["update"])."""
    found = []
    for operation in (row["_logged_first"], row["_logged_last"]):
        if operation and operation not in found:
            found.append(operation)
    if row["_quarantined"] and "quarantine" not in found:
        found.append("quarantine")
    if row["_conflict"]:
        found.append(f"conflict {row['_conflict']}")
    if row["_gap_opened"]:
        found.append("gap opened")
    if row["_gap_closed"]:
        found.append("gap closed")
    if row["_error"]:
        found.append("error")
    return found


def as_record(row: Mapping[str, Any], with_key: bool) -> dict[str, Any]:
    """One run as plain values: timestamps timezone-aware in UTC, `seconds` the duration."""
    record = {name: row[name] for name in COLUMNS if name != "seconds"}
    started, finished = as_utc(row["started_at"]), as_utc(row["finished_at"])
    record["started_at"], record["finished_at"] = started, finished
    record["seconds"] = round((finished - started).total_seconds(), 3) if finished else None
    record = {name: record[name] for name in COLUMNS}
    if with_key:
        record["touched"] = how_touched(row)
    return record


def stream_runs(
    connection: sa.Connection, query: sa.Select, *, with_key: bool, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """The query's runs one at a time, fetched `batch` at a time (a server-side cursor on
    PostgreSQL), so an export of the whole audit never holds it in memory."""
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(query)
    for row in result.mappings():
        yield as_record(row, with_key)
