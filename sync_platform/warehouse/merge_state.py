"""A packed copy of a large entity table's merge state, kept in the warehouse.

The merge of a complete snapshot needs (key, row hash, deleted?, version) of every row.
Reading that from a million-row PostgreSQL table costs 0.6 s, more than the whole rest of a
1% re-sync, while the same state packed (Arrow IPC, zstd: 7 MB) reads in 0.04 s. So on
PostgreSQL the merge of a large table keeps its state packed in `sync_merge_state`, one row
per entity table, written in the merge's own transaction. Rewriting all of it after every
merge would cost more than the read saves (0.2 s for a million rows), so the row holds the
state as last written whole (`state`) and the rows changed since (`changes`): a merge stores
only what it changed, until the changes reach a tenth of the state and it is written whole
again. The merge trusts the packed state only while nothing else has written the table since:

- a statement trigger on every entity table (`sync_merge_state_forget`) clears the packed
  state and moves its generation on whenever any statement writes the table (INSERT,
  UPDATE, DELETE, TRUNCATE, committed or not), except a merge keeping the state, which
  marks its own transaction with the `sync_platform.merge_state` setting (`hold`);
- the merge stores the state after its writes only if the generation is still the one it
  read before reading the table: a writer that committed in between moved it on, and one
  still in flight holds the row until it commits (then the generation has moved on) or
  rolls back (then the state is right);
- the stored state names the table's relfilenode (a rewrite, TRUNCATE or restore gives a
  new one) and its layout (format and key columns), and must decode to the expected schema.

Anything short of that means the merge reads the table, never that it diffs against a
wrong state. A writer that disables the trigger (`ALTER TABLE … DISABLE TRIGGER`,
`session_replication_role = replica`) or sets `sync_platform.merge_state` itself bypasses
this; docs/architecture.md says so. SQLite has no statement triggers: there the merge always
reads the table.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

from sync_platform.warehouse import bulk

log = logging.getLogger(__name__)

TRIGGER = "sync_merge_state_forget"
SETTING = "sync_platform.merge_state"
FORMAT = "ipc-zstd-v1"
# Below this many rows the table reads fast enough; packing would only add writes.
MIN_ROWS = 50_000
# A state this large is not stored (a bytea holds at most 1 GB; this stays far below).
MAX_BYTES = 256 * 1024 * 1024
# The state is written whole again once the rows changed since reach this share of it.
COMPACT_SHARE = 0.1

# The function keeps the search_path it was created with, so that a writer whose own
# search_path lacks the warehouse's schema (pg_restore sets it empty) still finds the table.
FORGET_FUNCTION = f"""CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    -- Any write but the state-keeping merge's own makes the packed merge state stale.
    IF coalesce(current_setting('{SETTING}', true), '') <> TG_TABLE_NAME THEN
        UPDATE sync_merge_state SET state = NULL, generation = generation + 1
        WHERE table_name = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$"""
# The state is compressed already: without this, every store pays for pglz trying again.
STORAGE_DDL = (
    "ALTER TABLE sync_merge_state ALTER COLUMN state SET STORAGE EXTERNAL, "
    "ALTER COLUMN changes SET STORAGE EXTERNAL"
)


def trigger_ddl(quoted: str) -> str:
    """The forget trigger on one entity table (`quoted`: its name, quoted)."""
    return (
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {quoted} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
    )


def track(connection: sa.Connection, table_name: str) -> bool:
    """Give an entity table its forget trigger and state row (PostgreSQL; idempotent).
    Returns whether the trigger was new."""
    if not bulk.is_postgres(connection):
        return False
    connection.execute(
        sa.text(
            "INSERT INTO sync_merge_state (table_name, generation) VALUES (:t, 0) "
            "ON CONFLICT (table_name) DO NOTHING"
        ),
        {"t": table_name},
    )
    exists = connection.execute(
        sa.text(
            "SELECT 1 FROM pg_trigger "
            "WHERE tgrelid = to_regclass(CAST(:t AS TEXT)) AND tgname = :name"
        ),
        {"t": table_name, "name": TRIGGER},
    ).first()
    if exists:
        return False
    quoted = connection.dialect.identifier_preparer.quote(table_name)
    connection.exec_driver_sql(trigger_ddl(quoted))
    return True


@dataclass
class Kept:
    """What `read` found: the generation to store against, and the state if usable (with
    the rows changed since it was last written whole, which `store` carries on)."""

    generation: int
    frame: pl.DataFrame | None
    changes: pl.DataFrame | None = None


def layout(key: list[str]) -> str:
    return f"{FORMAT}:{','.join(key)}"


def _pack(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="zstd")
    return buffer.getvalue()


def _without(frame: pl.DataFrame, keys: pl.Series) -> pl.DataFrame:
    """`frame` less the rows whose record key (its first column) is in `keys`."""
    return frame.filter(~pl.col(frame.columns[0]).is_in(keys.implode()))


def read(
    connection: sa.Connection, table_name: str, key: list[str], schema: dict[str, pl.DataType]
) -> Kept | None:
    """The packed state of `table_name` if it is still exact, with its generation; None
    when the table keeps none (SQLite, or a table without its state row). `schema`'s first
    column is the record key. Call it under the entity lock and before reading the table."""
    if not bulk.is_postgres(connection):
        return None
    # Binary results: the state arrives as bytes, not as hex text to decode (3x faster).
    cursor = connection.connection.driver_connection.cursor(binary=True)
    row = cursor.execute(
        "SELECT s.generation, s.state, s.changes, s.row_count, "
        "s.relfilenode = pg_relation_filenode(to_regclass(%(t)s)) AND s.layout = %(layout)s "
        "AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%(t)s) "
        "AND tgname = %(name)s AND tgenabled IN ('O', 'A')) AS current "
        "FROM sync_merge_state s WHERE s.table_name = %(t)s",
        {"t": table_name, "layout": layout(key), "name": TRIGGER},
    ).fetchone()
    if row is None:
        return None
    generation, blob, changes_blob, row_count, current = row
    if blob is None or not current:
        return Kept(generation, None)
    try:
        base = pl.read_ipc(io.BytesIO(blob))
        changes = None if changes_blob is None else pl.read_ipc(io.BytesIO(changes_blob))
    except Exception as exc:  # a damaged state is a cache miss, not a failed sync
        log.warning("merge state of %s does not decode (%s): reading the table", table_name, exc)
        return Kept(generation, None)
    expected = pl.Schema(schema)
    if base.schema != expected or (changes is not None and changes.schema != expected):
        log.warning("merge state of %s is not in the expected shape: reading it", table_name)
        return Kept(generation, None)
    frame = base
    if changes is not None:
        frame = pl.concat([_without(base, changes.get_column(base.columns[0])), changes])
    if frame.height != row_count:
        log.warning("merge state of %s is not in the expected shape: reading it", table_name)
        return Kept(generation, None)
    return Kept(generation, frame, changes)


def hold(connection: sa.Connection, table_name: str) -> None:
    """Mark this transaction as the merge that keeps `table_name`'s state: its own writes
    then leave the state row alone (until `release`), and `store` replaces it."""
    connection.execute(sa.select(sa.func.set_config(SETTING, table_name, True)))


def release(connection: sa.Connection) -> None:
    """Any later write in this transaction makes the state stale again."""
    connection.execute(sa.select(sa.func.set_config(SETTING, "", True)))


def store(
    connection: sa.Connection,
    table_name: str,
    key: list[str],
    kept: Kept,
    before: pl.DataFrame,
    inserted: pl.DataFrame,
    updated: pl.DataFrame,
) -> None:
    """Store the table's state after a merge that read `before` (the packed state `kept`
    gave, or the table) and then wrote `inserted` and `updated` (those rows as they now
    stand), if no one else wrote the table since `kept.generation`; otherwise, or when the
    state is too large to keep, clear it. With a usable `kept` state, only the rows changed
    since it was last written whole are written, until they reach COMPACT_SHARE of it."""
    updated_keys = updated.get_column(updated.columns[0])
    written = pl.concat([inserted, updated])
    rows = before.height + inserted.height
    changes = None
    if kept.frame is not None:
        carried = kept.changes if kept.changes is not None else written.clear()
        changes = pl.concat([_without(carried, updated_keys), written])
    values = {"rows": rows, "layout": layout(key), "t": table_name, "generation": kept.generation}
    if changes is not None and changes.height <= COMPACT_SHARE * rows:
        values["changes"] = _pack(changes)
        assignments = "changes = :changes"
    else:
        whole = _pack(pl.concat([_without(before, updated_keys), written]))
        values["state"] = whole if len(whole) <= MAX_BYTES else None
        assignments = "state = :state, changes = NULL"
    stored = connection.execute(
        sa.text(
            f"UPDATE sync_merge_state SET {assignments}, generation = generation + 1, "
            "row_count = :rows, layout = :layout, stored_at = now(), "
            "relfilenode = pg_relation_filenode(to_regclass(CAST(:t AS TEXT))) "
            "WHERE table_name = CAST(:t AS TEXT) AND generation = :generation"
        ),
        values,
    ).rowcount
    if not stored:  # someone else wrote the table meanwhile: their trigger cleared it
        log.info("merge state of %s not stored: the table was written meanwhile", table_name)
