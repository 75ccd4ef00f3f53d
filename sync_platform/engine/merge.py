"""Merge a snapshot into an entity table: the hash-diff path.

Inside the caller's transaction, under a per-entity lock: read the target's (key, row
hash, deleted?, version) — all of it for a complete snapshot (from the state the previous
merge packed, for a large PostgreSQL table: warehouse/merge_state.py), only the incoming
keys for a delta — diff against the incoming rows in polars, bulk-insert brand-new rows
straight into the target, apply changed rows through a private stage table and one
UPDATE … FROM, and soft-delete keys that left a complete snapshot through a stage table of
keys. Unchanged rows are never written, which is why a no-change re-sync costs a read and a
diff.

Updates are optimistic: each changed row is written only if its `_version` is still the one
read; a row someone else changed meanwhile is a conflict, as is an incoming row older than
the warehouse's (by the entity's `conflict_timestamp`). Conflicts are resolved by the
entity's strategy — newest wins by default — and returned for the audit.

The mass-delete guard refuses to soft-delete more than a configured share of the active
rows (a truncated feed looks exactly like a mass deletion); the upserts still apply.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.hashing import row_hash_expr
from sync_platform.engine.mapping import cast_text_columns, jsonable, record_key_expr
from sync_platform.engine.ports import MergeOutcome
from sync_platform.engine.scope import scope_conditions
from sync_platform.warehouse import bulk, merge_state
from sync_platform.warehouse.entity_tables import (
    DELETED_AT,
    FIRST_SYNCED_AT,
    ROW_HASH,
    SYNC_RUN_ID,
    SYNCED_AT,
    VERSION,
)

KEY = "_key"
EXISTING_HASH = "_existing_hash"
EXISTING_VERSION = "_existing_version"
EXISTING_STAMP = "_existing_stamp"
IS_DELETED = "_is_deleted"
# The state the diff reads (`_existing_state`), as merge_state keeps it packed.
STATE_SCHEMA = {
    KEY: pl.String,
    EXISTING_HASH: pl.Int64,
    IS_DELETED: pl.Int8,
    EXISTING_VERSION: pl.Int64,
}
CONFLICT_COLUMNS = ["record_key", "kind", "incoming_timestamp", "warehouse_timestamp", "resolution"]


def _state_columns(table: sa.Table, entity: EntityConfig, stamp: str | None) -> list:
    """The columns of the state the diff reads, as SQL (keys as text, the deleted flag as 0/1)."""
    return [
        *(sa.cast(table.c[column], sa.Text).label(column) for column in entity.key),
        table.c[ROW_HASH],
        sa.case((table.c[DELETED_AT].is_(None), 0), else_=1).label(IS_DELETED),
        table.c[VERSION],
        *([sa.cast(table.c[stamp], sa.Text).label(EXISTING_STAMP)] if stamp else []),
    ]


def _state_schema(entity: EntityConfig, stamp: str | None) -> dict[str, pl.DataType]:
    schema = {column: pl.String for column in entity.key} | {
        ROW_HASH: pl.Int64,
        IS_DELETED: pl.Int8,
        VERSION: pl.Int64,
    }
    return schema | ({EXISTING_STAMP: pl.String} if stamp else {})


def _state_frame(rows: pl.DataFrame, entity: EntityConfig, stamp: str | None) -> pl.DataFrame:
    """Rows read with `_state_columns` as the diff's state (`STATE_SCHEMA`, plus the typed
    conflict timestamp when `stamp`)."""
    if stamp:
        rows = rows.with_columns(
            cast_text_columns(
                rows.select(pl.col(EXISTING_STAMP).alias(stamp)), {stamp: entity.fields[stamp]}
            )
            .get_column(stamp)
            .alias(EXISTING_STAMP)
        )
    return rows.select(
        record_key_expr(entity.key).alias(KEY),
        pl.col(ROW_HASH).alias(EXISTING_HASH),
        pl.col(IS_DELETED),
        pl.col(VERSION).alias(EXISTING_VERSION),
        *([pl.col(EXISTING_STAMP)] if stamp else []),
    )


def _existing_state(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    incoming: pl.DataFrame,
    *,
    complete_snapshot: bool,
    scope: dict[str, object] | None,
    with_stamp: bool = False,
) -> pl.DataFrame:
    """(_key, _existing_hash, _is_deleted, _existing_version[, _existing_stamp]) of the rows
    the diff needs; the conflict timestamp only `with_stamp` (only changed rows need it,
    and for a large snapshot it cost more to read and parse than the rest of the state)."""
    stamp = entity.conflict_timestamp if with_stamp else None
    query = sa.select(*_state_columns(table, entity, stamp))
    query = query.where(*scope_conditions(table, scope))
    stage = None
    if not complete_snapshot:
        stage = bulk.create_stage_table(connection, table, entity.key)
        bulk.insert_frame(connection, stage, incoming.select(entity.key))
        staged = sa.table(stage, *(sa.column(column) for column in entity.key))
        query = query.join(
            staged, sa.and_(*(table.c[column] == staged.c[column] for column in entity.key))
        )
    existing = bulk.select_frame(connection, query, _state_schema(entity, stamp))
    if stage:
        bulk.drop_stage_table(connection, stage)
    return _state_frame(existing, entity, stamp)


def _update_from_stage(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    rows: pl.DataFrame,
    values: dict[str, object],
    *,
    expected_version: bool = False,
    written: list[pl.DataFrame] | None = None,
) -> int:
    """UPDATE target FROM a stage table holding `rows` (key columns + the columns to set,
    plus the expected `_version` when `expected_version`); returns rows updated. Given a
    `written` list, the updated rows' state as they now stand (`_state_frame`) is appended
    to it, returned by the UPDATE itself."""
    stage = bulk.create_stage_table(connection, table, rows.columns)
    bulk.insert_frame(connection, stage, rows)
    staged = sa.table(stage, *(sa.column(column) for column in rows.columns))
    settable = [c for c in rows.columns if c not in entity.key and c != VERSION]
    conditions = [table.c[column] == staged.c[column] for column in entity.key]
    if expected_version:
        conditions.append(table.c[VERSION] == staged.c[VERSION])
    update = (
        sa.update(table)
        .values({**{c: staged.c[c] for c in settable}, **values, VERSION: table.c[VERSION] + 1})
        .where(*conditions)
    )
    if written is None:
        count = connection.execute(update).rowcount
    else:
        returned = connection.execute(update.returning(*_state_columns(table, entity, None)))
        state = pl.DataFrame(returned.fetchall(), schema=_state_schema(entity, None), orient="row")
        written.append(_state_frame(state, entity, None))
        count = state.height
    bulk.drop_stage_table(connection, stage)
    return count


def _conflicts(frame: pl.DataFrame, kind: str, resolution: str, stamp: str | None) -> list[dict]:
    return [
        {
            "record_key": row[KEY],
            "kind": kind,
            "incoming_timestamp": row.get(stamp) if stamp else None,
            "warehouse_timestamp": row.get(EXISTING_STAMP),
            "resolution": resolution,
        }
        for row in frame.iter_rows(named=True)
    ]


def _apply_changes(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    changed: pl.DataFrame,
    *,
    values: dict[str, object],
    settled: pl.Series | None = None,
    written: list[pl.DataFrame] | None = None,
) -> tuple[int, list[dict]]:
    """Write changed rows optimistically; resolve stale and concurrently changed rows.

    `changed` holds the entity's columns, `_row_hash`, `_key`, `_existing_version` and
    (with a conflict timestamp) `_existing_stamp`. `written` as for `_update_from_stage`.
    """
    stamp, newest_wins = entity.conflict_timestamp, entity.conflict_strategy == "newest_wins"
    conflicts: list[dict] = []
    if stamp:
        stale = changed.filter(pl.col(stamp) < pl.col(EXISTING_STAMP))
        if settled is not None:  # already judged as changed on both sides
            stale = stale.filter(~pl.col(KEY).is_in(settled.implode()))
        if stale.height:
            resolution = "kept_warehouse" if newest_wins else "applied_source"
            conflicts += _conflicts(stale, "stale_source", resolution, stamp)
            if newest_wins:
                changed = changed.filter(~pl.col(KEY).is_in(stale.get_column(KEY).implode()))
    columns = [*entity.columns, ROW_HASH]
    count = _update_from_stage(
        connection,
        table,
        entity,
        changed.select(*columns, pl.col(EXISTING_VERSION).alias(VERSION)),
        values,
        expected_version=True,
        written=written,
    )
    if count == changed.height:
        return count, conflicts
    # Someone changed these rows after we read them: read them again and decide.
    moved = _existing_state(
        connection, table, entity, changed, complete_snapshot=False, scope=None, with_stamp=True
    ).rename({EXISTING_VERSION: "_now_version", EXISTING_STAMP: "_now_stamp"}, strict=False)
    raced = changed.join(moved, on=KEY).filter(pl.col("_now_version") != pl.col(EXISTING_VERSION))
    if stamp:
        raced = raced.with_columns(pl.col("_now_stamp").alias(EXISTING_STAMP))
        source_newer = pl.col(stamp) > pl.col(EXISTING_STAMP)
        apply = raced.filter(source_newer) if newest_wins else raced
    else:  # nothing says which is newer: the sync's reading of the source is the latest
        apply = raced
    kept = raced.filter(~pl.col(KEY).is_in(apply.get_column(KEY).implode()))
    conflicts += _conflicts(apply, "concurrent_update", "applied_source", stamp)
    conflicts += _conflicts(kept, "concurrent_update", "kept_warehouse", stamp)
    if apply.height:
        count += _update_from_stage(
            connection, table, entity, apply.select(columns), values, written=written
        )
    return count, conflicts


def _current_rows(
    connection: sa.Connection, table: sa.Table, entity: EntityConfig, keys: pl.DataFrame
) -> pl.DataFrame:
    """The typed current values of `keys`' rows (KEY and the entity's columns)."""
    stage = bulk.create_stage_table(connection, table, entity.key)
    bulk.insert_frame(connection, stage, keys.select(entity.key))
    staged = sa.table(stage, *(sa.column(column) for column in entity.key))
    query = sa.select(
        *(sa.cast(table.c[column], sa.Text).label(column) for column in entity.columns)
    ).join(staged, sa.and_(*(table.c[column] == staged.c[column] for column in entity.key)))
    text = bulk.select_frame(connection, query, {c: pl.String for c in entity.columns})
    bulk.drop_stage_table(connection, stage)
    typed = cast_text_columns(text, entity.fields)
    return typed.with_columns(record_key_expr(entity.key).alias(KEY))


def _review_items(
    incoming: pl.DataFrame, current: pl.DataFrame, entity: EntityConfig
) -> list[dict]:
    stamp = entity.conflict_timestamp
    now_by_key = {row[KEY]: row for row in current.iter_rows(named=True)}
    items = []
    for row in incoming.iter_rows(named=True):
        held = now_by_key[row[KEY]]
        items.append(
            {
                "record_key": row[KEY],
                "fields": [c for c in entity.value_columns if row[c] != held[c]],
                "incoming": {c: jsonable(row[c]) for c in entity.columns},
                "current": {c: jsonable(held[c]) for c in entity.columns},
                "incoming_timestamp": row.get(stamp),
                "warehouse_timestamp": held.get(stamp),
            }
        )
    return items


def _both_changed(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    changed: pl.DataFrame,
    current: pl.DataFrame,
    outcome: MergeOutcome,
    written: list[pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, int]:
    """Rows the source changed that the warehouse also changed since the sync that wrote
    them (their values no longer hash to the stored hash: edited in place). The strategy
    decides: source_wins applies the source; warehouse_wins keeps the warehouse and stores
    the source's hash, so the row is left alone until the source changes it again;
    newest_wins does one or the other by conflict_timestamp; manual_review keeps the
    warehouse and hands the pair to `outcome.review`. Returns the rows still to write and
    how many were kept. `current` holds the changed rows' values as the warehouse has them
    now (`_current_rows`); `written` as for `_update_from_stage`."""
    live = changed.filter(pl.col(IS_DELETED) == 0)
    if live.is_empty():
        return changed, 0
    current = current.with_columns(row_hash_expr(entity.value_columns).alias("_current_hash"))
    edited_keys = (
        live.select(KEY, EXISTING_HASH)
        .join(current.select(KEY, "_current_hash"), on=KEY)
        .filter(pl.col("_current_hash") != pl.col(EXISTING_HASH))
        .get_column(KEY)
    )
    if edited_keys.is_empty():
        return changed, 0
    edited = changed.filter(pl.col(KEY).is_in(edited_keys.implode()))
    strategy, stamp = entity.conflict_strategy, entity.conflict_timestamp
    if strategy == "source_wins":
        keep = edited.clear()
    elif strategy == "newest_wins":
        keep = edited.filter(~(pl.col(stamp) > pl.col(EXISTING_STAMP)).fill_null(False))
    else:
        keep = edited
    apply = edited.filter(~pl.col(KEY).is_in(keep.get_column(KEY).implode()))
    outcome.conflicts += _conflicts(apply, "both_changed", "applied_source", stamp)
    if strategy == "manual_review":
        outcome.conflicts += _conflicts(keep, "both_changed", "held_for_review", stamp)
        outcome.review = _review_items(
            keep, current.filter(pl.col(KEY).is_in(keep.get_column(KEY).implode())), entity
        )
    elif keep.height:
        outcome.conflicts += _conflicts(keep, "both_changed", "kept_warehouse", stamp)
        _update_from_stage(
            connection, table, entity, keep.select(*entity.key, ROW_HASH), {}, written=written
        )
    return changed.filter(~pl.col(KEY).is_in(keep.get_column(KEY).implode())), keep.height


def merge_snapshot(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    incoming: pl.DataFrame,
    *,
    complete_snapshot: bool,
    sync_run_id: int,
    now: datetime,
    max_delete_share: float,
    allow_mass_delete: bool = False,
    protected_keys: list[str] | None = None,
    scope: dict[str, object] | None = None,
    after_state_read=None,
    force_source: bool = False,
) -> MergeOutcome:
    """Upsert changed rows, soft-delete vanished ones (complete snapshots only).

    `incoming` holds the entity's columns plus `_row_hash`, one row per key.
    `protected_keys` are keys the source still has but whose rows were quarantined or held:
    they are neither updated nor deleted. `scope` limits a complete snapshot to a slice of
    the table (e.g. one partition's date). `after_state_read` is a test hook, called
    between reading the target's state and writing to it. A row changed on both sides since
    the last sync is settled by the entity's conflict_strategy (`_both_changed`), unless
    `force_source` (a person chose the source's version).
    """
    bulk.lock_entity(connection, table.name)
    # A complete snapshot of the whole table can diff against the packed state (read first:
    # its generation must predate the table read it may stand in for).
    packed = None
    if complete_snapshot and not scope:
        packed = merge_state.read(connection, table.name, entity.key, STATE_SCHEMA)
    if packed is not None and packed.frame is not None:
        existing = packed.frame
    else:
        existing = _existing_state(
            connection, table, entity, incoming, complete_snapshot=complete_snapshot, scope=scope
        )
    keeping = packed is not None and max(existing.height, incoming.height) >= merge_state.MIN_ROWS
    # The state of every row this merge updates, as its UPDATEs return it (to store after).
    written: list[pl.DataFrame] | None = None
    if keeping:
        merge_state.hold(connection, table.name)
        written = []
    keyed = incoming.with_columns(record_key_expr(entity.key).alias(KEY))
    # Join only the narrow state: the wide rows are then picked by mask, in incoming order.
    flags = keyed.select(KEY, ROW_HASH).join(existing, on=KEY, how="left", maintain_order="left")
    is_new = flags.get_column(EXISTING_HASH).is_null()
    is_changed = ~is_new & (
        (flags.get_column(EXISTING_HASH) != flags.get_column(ROW_HASH))
        | (flags.get_column(IS_DELETED) == 1)
    )
    new_rows = keyed.filter(is_new)
    changed_rows = pl.concat(
        [keyed.filter(is_changed), flags.filter(is_changed).drop(KEY, ROW_HASH)],
        how="horizontal",
    )
    # The keys a complete snapshot no longer has, found by polars in the background while the
    # database applies the inserts and updates (the anti-join costs 0.08 s at a million rows).
    vanished = None
    if complete_snapshot:
        vanished = (
            existing.lazy()
            .filter(pl.col(IS_DELETED) == 0)
            .join(keyed.lazy().select(KEY), on=KEY, how="anti")
            .filter(~pl.col(KEY).is_in(protected_keys or []))
            .select(KEY)
            .collect(background=True)
        )
    outcome = MergeOutcome(
        unchanged=keyed.height - new_rows.height - changed_rows.height,
        active_before=existing.filter(pl.col(IS_DELETED) == 0).height,
    )
    current = None
    if changed_rows.height and entity.conflict_timestamp:
        # The changed rows' values as the warehouse has them now, read for those rows only:
        # they hold the warehouse's conflict timestamps, and show rows edited in place.
        current = _current_rows(connection, table, entity, changed_rows)
        changed_rows = changed_rows.join(
            current.select(KEY, pl.col(entity.conflict_timestamp).alias(EXISTING_STAMP)),
            on=KEY,
            how="left",
            maintain_order="left",
        )
    if after_state_read:
        after_state_read()
    if current is not None and not force_source:
        changed_rows, held = _both_changed(
            connection, table, entity, changed_rows, current, outcome, written
        )
        outcome.unchanged += held
    changed_rows = changed_rows.drop(EXISTING_HASH, IS_DELETED)
    columns = [*entity.columns, ROW_HASH]
    if new_rows.height:
        rows = new_rows.select(columns).with_columns(
            pl.lit(now).alias(FIRST_SYNCED_AT),
            pl.lit(now).alias(SYNCED_AT),
            pl.lit(sync_run_id, dtype=pl.Int64).alias(SYNC_RUN_ID),
            pl.lit(1, dtype=pl.Int32).alias(VERSION),
        )
        if existing.height == 0 and not scope:
            bulk.insert_into_empty_table(connection, table, rows)
        else:
            bulk.insert_frame(connection, table.name, rows)
        outcome.inserted = new_rows.height
    written_keys = pl.Series(KEY, [], dtype=pl.String)
    if changed_rows.height:
        outcome.updated, applied = _apply_changes(
            connection,
            table,
            entity,
            changed_rows,
            values={SYNCED_AT: now, DELETED_AT: sa.null(), SYNC_RUN_ID: sync_run_id},
            settled=pl.Series([c["record_key"] for c in outcome.conflicts], dtype=pl.String),
            written=written,
        )
        kept = {c["record_key"] for c in applied if c["resolution"] == "kept_warehouse"}
        outcome.conflicts += applied
        written_keys = changed_rows.get_column(KEY).filter(
            ~changed_rows.get_column(KEY).is_in(list(kept))
        )
        outcome.unchanged += len(kept)

    gone = pl.DataFrame(schema={KEY: pl.String})
    if vanished is not None:
        gone = vanished.fetch_blocking()
        share = gone.height / outcome.active_before if outcome.active_before else 0.0
        if gone.height and share > max_delete_share and not allow_mass_delete:
            outcome.delete_refused = (
                f"refused to soft-delete {gone.height} of {outcome.active_before} active rows "
                f"({share:.0%}, above the {max_delete_share:.0%} limit): the snapshot may be "
                "incomplete. If the source really removed them, re-run with "
                "allow_mass_delete=true (or raise mass_delete_max_share)"
            )
            gone = gone.clear()
        elif gone.height:
            _update_from_stage(
                connection,
                table,
                entity,
                typed_keys(gone, entity),
                {DELETED_AT: now, SYNCED_AT: now, SYNC_RUN_ID: sync_run_id},
                written=written,
            )
            outcome.soft_deleted = gone.height

    if keeping:
        # Rows no UPDATE returned were not written (a conflict kept them): the state read
        # still holds them exactly, or, if someone else wrote them, the store is refused.
        updated = pl.concat([pl.DataFrame(schema=STATE_SCHEMA), *written])
        if packed.frame is None or new_rows.height or updated.height:
            inserted = new_rows.select(
                KEY,
                pl.col(ROW_HASH).alias(EXISTING_HASH),
                pl.lit(0, dtype=pl.Int8).alias(IS_DELETED),
                pl.lit(1, dtype=pl.Int64).alias(EXISTING_VERSION),
            )
            merge_state.store(
                connection, table.name, entity.key, packed, existing, inserted, updated
            )
        merge_state.release(connection)
    outcome.changes = pl.concat(
        [
            new_rows.select(pl.col(KEY).alias("record_key"), pl.lit("insert").alias("operation")),
            written_keys.to_frame("record_key").with_columns(pl.lit("update").alias("operation")),
            gone.select(pl.col(KEY).alias("record_key"), pl.lit("soft_delete").alias("operation")),
        ]
    )
    return outcome


def typed_keys(keys: pl.DataFrame, entity: EntityConfig) -> pl.DataFrame:
    """Text record keys back to the key columns' types (for a stage table of keys)."""
    if len(entity.key) == 1:
        text = keys.select(pl.col(KEY).alias(entity.key[0]))
    else:
        text = keys.select(
            pl.col(KEY).str.split_exact("|", len(entity.key) - 1).struct.rename_fields(entity.key)
        ).unnest(KEY)
    return cast_text_columns(text, {column: entity.fields[column] for column in entity.key})
