"""Compare an entity's records in the source with its rows in the warehouse.

Key and row hash first, field by field only where the hashes differ: each side is read in
pages (the source as it serves them, the warehouse in key order), typed by the rules a sync
uses, hashed over the compared columns, and spilled to Parquet in a work directory. Only
(key, hash) stays in memory, so a million vehicles compare in bounded memory; the rows of
the keys that differ are read back from the spill for the field-by-field diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.audit import last_good_start
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.loadable import SOURCE_ROW, loadable_page
from sync_platform.engine.mapping import cast_text_columns, jsonable, record_key_expr
from sync_platform.engine.ports import Records
from sync_platform.engine.severity import classify
from sync_platform.engine.validation import entity_schema
from sync_platform.warehouse import bulk
from sync_platform.warehouse.entity_tables import DELETED_AT, entity_table

KEY = "_key"
HASH = "_compared_hash"
WAREHOUSE_BATCH = 100_000
# Syncs that read everything the source changed (a targeted resync of a few keys does not).
WHOLE_READS = ("snapshot", "changes", "slice")


@dataclass
class Discrepancy:
    record_key: str
    kind: str  # missing | extra | field_diff | status_mismatch
    severity: str  # high | medium | low
    fields: list[str]
    source_values: dict[str, Any] | None
    warehouse_values: dict[str, Any] | None


@dataclass
class EntityComparison:
    entity: str
    source_rows: int = 0
    warehouse_rows: int = 0
    unreadable: list[str] = field(default_factory=list)  # keys the mapping refused
    pending: int = 0  # source changes newer than the latest good sync: not judged yet
    discrepancies: list[Discrepancy] = field(default_factory=list)


def compared_columns(entity: EntityConfig) -> list[str]:
    ignored = set(entity.reconcile.ignore_fields) if entity.reconcile else set()
    return [column for column in entity.value_columns if column not in ignored]


def modified_column(entity: EntityConfig) -> str | None:
    """The column saying when the source last changed a record, if the entity has one."""
    stated = entity.reconcile.modified_field if entity.reconcile else None
    return stated or entity.conflict_timestamp or entity.cursor_field


def _spill_source(
    entity: EntityConfig, pages: Iterable[Records], workdir: Path, result: EntityComparison
) -> pl.DataFrame:
    """Map each page as a sync would, spill it, keep (key, hash); the first copy of a key
    the source repeats wins, as in a sync."""
    schema = entity_schema(entity)
    hashes = []
    for number, page in enumerate(pages):
        loaded = loadable_page(page, entity, result.source_rows, schema=schema)
        result.source_rows += len(page)
        result.unreadable += [r.record_key or "(no key)" for r in loaded.rejects]
        frame = loaded.frame.select(
            record_key_expr(entity.key).alias(KEY), *entity.columns, SOURCE_ROW
        )
        frame.write_parquet(workdir / f"source-{number:06d}.parquet")
        hashes.append(
            frame.select(KEY, SOURCE_ROW, row_hash_expr(compared_columns(entity)).alias(HASH))
        )
    if not hashes:
        return pl.DataFrame(schema={KEY: pl.String, SOURCE_ROW: pl.Int64, HASH: pl.Int64})
    return pl.concat(hashes).unique(KEY, keep="first", maintain_order=True)


def _warehouse_batches(
    connection: sa.Connection, entity: EntityConfig, batch: int
) -> Iterable[pl.DataFrame]:
    """Active rows in key order, `batch` at a time (keyset paging: no OFFSET rescans)."""
    table = entity_table(entity)
    key_columns = [table.c[column] for column in entity.key]
    text_schema = {column: pl.String for column in entity.columns}
    last: tuple | None = None
    while True:
        query = (
            sa.select(*(sa.cast(table.c[c], sa.Text).label(c) for c in entity.columns))
            .where(table.c[DELETED_AT].is_(None))
            .order_by(*key_columns)
            .limit(batch)
        )
        if last is not None:
            query = query.where(sa.tuple_(*key_columns) > sa.tuple_(*last))
        frame = cast_text_columns(bulk.select_frame(connection, query, text_schema), entity.fields)
        if frame.height:
            yield frame
        if frame.height < batch:
            return
        last = tuple(frame.row(-1, named=True)[column] for column in entity.key)


def _spill_warehouse(
    connection: sa.Connection,
    entity: EntityConfig,
    workdir: Path,
    result: EntityComparison,
    batch: int,
) -> pl.DataFrame:
    hashes = []
    for number, frame in enumerate(_warehouse_batches(connection, entity, batch)):
        result.warehouse_rows += frame.height
        keyed = frame.select(record_key_expr(entity.key).alias(KEY), *entity.columns)
        keyed.write_parquet(workdir / f"warehouse-{number:06d}.parquet")
        hashes.append(keyed.select(KEY, row_hash_expr(compared_columns(entity)).alias(HASH)))
    if not hashes:
        return pl.DataFrame(schema={KEY: pl.String, HASH: pl.Int64})
    return pl.concat(hashes)


def _by_key(rows: pl.DataFrame | None) -> dict[str, dict[str, Any]]:
    return {} if rows is None else {row[KEY]: row for row in rows.iter_rows(named=True)}


def _rows(workdir: Path, side: str, keys: pl.Series, first: pl.DataFrame | None = None):
    """The spilled rows of `keys` on one side (the source: the first copy of each key)."""
    if keys.is_empty():
        return None
    files = sorted(workdir.glob(f"{side}-*.parquet"))
    rows = pl.scan_parquet(files).filter(pl.col(KEY).is_in(keys.implode()))
    if first is not None:
        rows = rows.join(first.lazy().select(KEY, SOURCE_ROW), on=[KEY, SOURCE_ROW])
    return rows.collect().drop(SOURCE_ROW, strict=False)


def _differing_fields(source: pl.DataFrame, warehouse: pl.DataFrame, columns: list[str]):
    joined = source.join(warehouse, on=KEY, suffix="__warehouse")
    flags = [
        pl.when(pl.col(c).ne_missing(pl.col(f"{c}__warehouse"))).then(pl.lit(c)) for c in columns
    ]
    return joined.select(KEY, pl.concat_list(flags).list.drop_nulls().alias("_fields"))


def _pending_keys(rows: pl.DataFrame | None, column: str | None, since: datetime | None):
    """Keys whose source record changed at or after `since`: the next sync brings them."""
    if rows is None or column is None or since is None:
        return set()
    return set(rows.filter(pl.col(column) >= since).get_column(KEY).to_list())


def _snapshot(engine: sa.Engine) -> sa.Connection:
    """One transaction for the whole warehouse read: a consistent view of the table."""
    connection = engine.connect()
    if connection.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


def compare_entity(
    engine: sa.Engine,
    source: str,
    entity: EntityConfig,
    pages: Iterable[Records],
    workdir: Path,
    *,
    batch: int = WAREHOUSE_BATCH,
) -> EntityComparison:
    """Every difference between what the source serves (`pages`) and the warehouse's active
    rows. The warehouse is read first, in one transaction, then the source: a source record
    changed at or after the start of the entity's latest good sync (which a sync committing
    meanwhile may or may not have brought) is not judged but counted as pending."""
    result = EntityComparison(entity.name)
    workdir.mkdir(parents=True, exist_ok=True)
    with _snapshot(engine) as connection:
        synced_since = last_good_start(connection, source, entity.name, WHOLE_READS)
        warehouse = _spill_warehouse(connection, entity, workdir, result, batch)
    source_hashes = _spill_source(entity, pages, workdir, result)
    missing = source_hashes.join(warehouse, on=KEY, how="anti").get_column(KEY)
    extra = warehouse.join(source_hashes, on=KEY, how="anti").get_column(KEY)
    changed = (
        source_hashes.join(warehouse, on=KEY, suffix="_w")
        .filter(pl.col(HASH) != pl.col(f"{HASH}_w"))
        .get_column(KEY)
    )
    found: list[Discrepancy] = []
    source_rows = _rows(workdir, "source", pl.concat([missing, changed]), first=source_hashes)
    warehouse_rows = _rows(workdir, "warehouse", pl.concat([extra, changed]))
    by_key_source = _by_key(source_rows)
    by_key_warehouse = _by_key(warehouse_rows)
    pending = _pending_keys(source_rows, modified_column(entity), synced_since)
    result.pending = len(pending)
    for key in missing.to_list():
        if key not in pending:
            found.append(_discrepancy(entity, key, "missing", [], by_key_source[key], None))
    for key in extra.to_list():
        found.append(_discrepancy(entity, key, "extra", [], None, by_key_warehouse[key]))
    if not changed.is_empty():
        diffs = _differing_fields(
            source_rows.filter(pl.col(KEY).is_in(changed.implode())),
            warehouse_rows.filter(pl.col(KEY).is_in(changed.implode())),
            compared_columns(entity),
        )
        for key, fields in diffs.iter_rows():
            if key in pending:
                continue
            status = entity.reconcile.status_field if entity.reconcile else None
            kind = "status_mismatch" if status in fields else "field_diff"
            found.append(
                _discrepancy(entity, key, kind, fields, by_key_source[key], by_key_warehouse[key])
            )
    result.discrepancies = sorted(found, key=lambda d: d.record_key)
    return result


def _values(entity: EntityConfig, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {column: jsonable(row[column]) for column in entity.columns}


def _discrepancy(
    entity: EntityConfig,
    key: str,
    kind: str,
    fields: list[str],
    source_row: dict[str, Any] | None,
    warehouse_row: dict[str, Any] | None,
) -> Discrepancy:
    present = source_row if source_row is not None else warehouse_row
    return Discrepancy(
        record_key=key,
        kind=kind,
        severity=classify(entity, kind, fields, present),
        fields=fields,
        source_values=_values(entity, source_row),
        warehouse_values=_values(entity, warehouse_row),
    )
