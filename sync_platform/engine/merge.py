"""Merge a snapshot into an entity table: the hash-diff path.

Inside the caller's transaction, under a per-entity lock: read the target's (key, row
hash, deleted?) — all of it for a complete snapshot, only the incoming keys for a delta —
diff against the incoming rows in polars, bulk-insert brand-new rows straight into the
target, apply changed rows through a private stage table and one UPDATE … FROM, and
soft-delete keys that left a complete snapshot through a stage table of keys. Unchanged
rows are never written, which is why a no-change re-sync costs a read and a diff.

The mass-delete guard refuses to soft-delete more than a configured share of the active
rows (a truncated feed looks exactly like a mass deletion); the upserts still apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig
from sync_platform.engine.mapping import cast_text_columns, record_key_expr
from sync_platform.warehouse import bulk
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
IS_DELETED = "_is_deleted"


@dataclass
class MergeOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    soft_deleted: int = 0
    active_before: int = 0
    delete_refused: str | None = None
    changes: pl.DataFrame | None = None  # record_key, operation: what was written


def _existing_state(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    incoming: pl.DataFrame,
    *,
    complete_snapshot: bool,
    scope: dict[str, object] | None,
) -> pl.DataFrame:
    """(_key, _existing_hash, _is_deleted) of the target rows the diff needs."""
    key_text = [sa.cast(table.c[column], sa.Text).label(column) for column in entity.key]
    query = sa.select(
        *key_text,
        table.c[ROW_HASH],
        sa.case((table.c[DELETED_AT].is_(None), 0), else_=1).label(IS_DELETED),
    )
    for column, value in (scope or {}).items():
        query = query.where(table.c[column] == value)
    stage = None
    if not complete_snapshot:
        stage = bulk.create_stage_table(connection, table, entity.key)
        bulk.insert_frame(connection, stage, incoming.select(entity.key))
        staged = sa.table(stage, *(sa.column(column) for column in entity.key))
        query = query.join(
            staged, sa.and_(*(table.c[column] == staged.c[column] for column in entity.key))
        )
    schema = {column: pl.String for column in entity.key} | {
        ROW_HASH: pl.Int64,
        IS_DELETED: pl.Int8,
    }
    existing = bulk.select_frame(connection, query, schema)
    if stage:
        bulk.drop_stage_table(connection, stage)
    return existing.select(
        record_key_expr(entity.key).alias(KEY),
        pl.col(ROW_HASH).alias(EXISTING_HASH),
        pl.col(IS_DELETED),
    )


def _apply_updates(
    connection: sa.Connection,
    table: sa.Table,
    entity: EntityConfig,
    rows: pl.DataFrame,
    values: dict[str, object],
) -> None:
    """UPDATE target FROM a stage table holding `rows` (key columns + the columns to set)."""
    stage = bulk.create_stage_table(connection, table, rows.columns)
    bulk.insert_frame(connection, stage, rows)
    staged = sa.table(stage, *(sa.column(column) for column in rows.columns))
    assignments = {column: staged.c[column] for column in rows.columns if column not in entity.key}
    connection.execute(
        sa.update(table)
        .values({**assignments, **values, VERSION: table.c[VERSION] + 1})
        .where(*(table.c[column] == staged.c[column] for column in entity.key))
    )
    bulk.drop_stage_table(connection, stage)


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
) -> MergeOutcome:
    """Upsert changed rows, soft-delete vanished ones (complete snapshots only).

    `incoming` holds the entity's columns plus `_row_hash`, one row per key.
    `protected_keys` are keys the source still has but whose rows were quarantined: they
    are neither updated nor deleted. `scope` limits a complete snapshot to a slice of the
    table (e.g. one partition's date).
    """
    bulk.lock_entity(connection, table.name)
    existing = _existing_state(
        connection, table, entity, incoming, complete_snapshot=complete_snapshot, scope=scope
    )
    keyed = incoming.with_columns(record_key_expr(entity.key).alias(KEY))
    # Join only (key, hash): the wide rows are then picked by mask, in incoming order.
    flags = keyed.select(KEY, ROW_HASH).join(existing, on=KEY, how="left", maintain_order="left")
    is_new = flags.get_column(EXISTING_HASH).is_null()
    is_changed = ~is_new & (
        (flags.get_column(EXISTING_HASH) != flags.get_column(ROW_HASH))
        | (flags.get_column(IS_DELETED) == 1)
    )
    new_rows = keyed.filter(is_new)
    changed_rows = keyed.filter(is_changed)

    outcome = MergeOutcome(
        inserted=new_rows.height,
        updated=changed_rows.height,
        unchanged=keyed.height - new_rows.height - changed_rows.height,
        active_before=existing.filter(pl.col(IS_DELETED) == 0).height,
    )
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
    if changed_rows.height:
        _apply_updates(
            connection,
            table,
            entity,
            changed_rows.select(columns),
            {SYNCED_AT: now, DELETED_AT: sa.null(), SYNC_RUN_ID: sync_run_id},
        )

    gone = pl.DataFrame(schema={KEY: pl.String})
    if complete_snapshot:
        gone = (
            existing.filter(pl.col(IS_DELETED) == 0)
            .join(keyed.select(KEY), on=KEY, how="anti")
            .filter(~pl.col(KEY).is_in(protected_keys or []))
            .select(KEY)
        )
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
            key_frame = (
                gone.select(
                    pl.col(KEY)
                    .str.split_exact("|", len(entity.key) - 1)
                    .struct.rename_fields(entity.key)
                ).unnest(KEY)
                if len(entity.key) > 1
                else gone.select(pl.col(KEY).alias(entity.key[0]))
            )
            typed_keys = cast_text_columns(key_frame, {k: entity.fields[k] for k in entity.key})
            _apply_updates(
                connection,
                table,
                entity,
                typed_keys,
                {DELETED_AT: now, SYNCED_AT: now, SYNC_RUN_ID: sync_run_id},
            )
            outcome.soft_deleted = gone.height

    outcome.changes = pl.concat(
        [
            new_rows.select(pl.col(KEY).alias("record_key"), pl.lit("insert").alias("operation")),
            changed_rows.select(
                pl.col(KEY).alias("record_key"), pl.lit("update").alias("operation")
            ),
            gone.select(pl.col(KEY).alias("record_key"), pl.lit("soft_delete").alias("operation")),
        ]
    )
    return outcome
