"""A packed copy of a large entity table's merge state, kept in the warehouse.

The merge of a complete snapshot needs (key, row hash, deleted?, version) of every row.
Reading that from a million-row PostgreSQL table costs 0.6 s, more than the whole rest of a
1% re-sync, while the same state packed (Arrow IPC, zstd: 7 MB) reads in 0.04 s. So on
PostgreSQL the merge of a large table keeps its state packed in `sync_merge_state`, one row
per entity table, written in the merge's own transaction, and trusts it only while nothing
else has written the table since:

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
STORAGE_DDL = "ALTER TABLE sync_merge_state ALTER COLUMN state SET STORAGE EXTERNAL"


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
    """What `read` found: the generation to store against, and the state if usable."""

    generation: int
    frame: pl.DataFrame | None


def layout(key: list[str]) -> str:
    return f"{FORMAT}:{','.join(key)}"


def read(
    connection: sa.Connection, table_name: str, key: list[str], schema: dict[str, pl.DataType]
) -> Kept | None:
    """The packed state of `table_name` if it is still exact, with its generation; None
    when the table keeps none (SQLite, or a table without its state row). Call it under the
    entity lock and before reading the table itself."""
    if not bulk.is_postgres(connection):
        return None
    # Binary results: the state arrives as bytes, not as hex text to decode (3x faster).
    cursor = connection.connection.driver_connection.cursor(binary=True)
    row = cursor.execute(
        "SELECT s.generation, s.state, s.row_count, "
        "s.relfilenode = pg_relation_filenode(to_regclass(%(t)s)) AND s.layout = %(layout)s "
        "AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%(t)s) "
        "AND tgname = %(name)s AND tgenabled IN ('O', 'A')) AS current "
        "FROM sync_merge_state s WHERE s.table_name = %(t)s",
        {"t": table_name, "layout": layout(key), "name": TRIGGER},
    ).fetchone()
    if row is None:
        return None
    generation, blob, row_count, current = row
    if blob is None or not current:
        return Kept(generation, None)
    try:
        frame = pl.read_ipc(io.BytesIO(blob))
    except Exception as exc:  # a damaged state is a cache miss, not a failed sync
        log.warning("merge state of %s does not decode (%s): reading the table", table_name, exc)
        return Kept(generation, None)
    if frame.schema != pl.Schema(schema) or frame.height != row_count:
        log.warning("merge state of %s is not in the expected shape: reading it", table_name)
        return Kept(generation, None)
    return Kept(generation, frame)


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
    generation: int,
    frame: pl.DataFrame,
) -> None:
    """Replace the packed state with `frame` (the table's state after this merge's writes)
    if no one else wrote the table since `generation` was read; otherwise, or when it is
    too large to keep, clear it."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="zstd")
    blob = buffer.getvalue() if buffer.tell() <= MAX_BYTES else None
    stored = connection.execute(
        sa.text(
            "UPDATE sync_merge_state SET state = :state, generation = generation + 1, "
            "row_count = :rows, layout = :layout, stored_at = now(), "
            "relfilenode = pg_relation_filenode(to_regclass(CAST(:t AS TEXT))) "
            "WHERE table_name = CAST(:t AS TEXT) AND generation = :generation"
        ),
        {
            "state": blob,
            "rows": frame.height,
            "layout": layout(key),
            "t": table_name,
            "generation": generation,
        },
    ).rowcount
    if not stored:  # someone else wrote the table meanwhile: their trigger cleared it
        log.info("merge state of %s not stored: the table was written meanwhile", table_name)
