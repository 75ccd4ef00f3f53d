"""The thin dialect layer: move polars frames in and out of the warehouse fast.

Postgres uses COPY in both directions (CSV written and read by polars, in batches so a
million-row load never holds its whole CSV in memory). SQLite uses the driver's
executemany inside the caller's transaction, its fastest write path. Everything above
this module is dialect-free.
"""

from __future__ import annotations

import io
import uuid

import polars as pl
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter

COPY_BATCH_ROWS = 100_000
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%6f"  # SQLAlchemy's own SQLite storage format


def _quote(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _column_list(connection: sa.Connection, columns: list[str]) -> str:
    return ", ".join(_quote(connection, column) for column in columns)


def is_postgres(connection: sa.Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _driver_connection(connection: sa.Connection):
    return connection.connection.driver_connection


def _sqlite_values(frame: pl.DataFrame) -> pl.DataFrame:
    """Values the sqlite3 driver binds without adapters, stored as SQLAlchemy reads them."""
    conversions = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            column = pl.col(name)
            if dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            conversions.append(column.dt.strftime(SQLITE_TIMESTAMP_FORMAT).alias(name))
        elif isinstance(dtype, pl.Date):
            conversions.append(pl.col(name).dt.strftime("%Y-%m-%d").alias(name))
        elif isinstance(dtype, pl.Decimal):
            conversions.append(pl.col(name).cast(pl.String).alias(name))
        elif dtype == pl.Boolean:
            conversions.append(pl.col(name).cast(pl.Int8).alias(name))
    return frame.with_columns(conversions) if conversions else frame


def insert_frame(connection: sa.Connection, table_name: str, frame: pl.DataFrame) -> int:
    """Append every row of `frame` to `table_name` (columns by name). Returns rows written."""
    if frame.height == 0:
        return 0
    columns = frame.columns
    target = f"{_quote(connection, table_name)} ({_column_list(connection, columns)})"
    if is_postgres(connection):
        cursor = _driver_connection(connection).cursor()
        # The queued writer sends from a worker thread while polars writes the next batch.
        writer = QueuedLibpqWriter(cursor)
        with cursor.copy(f"COPY {target} FROM STDIN (FORMAT csv)", writer=writer) as copy:
            for batch in frame.iter_slices(COPY_BATCH_ROWS):
                buffer = io.BytesIO()
                batch.write_csv(
                    buffer,
                    include_header=False,
                    quote_style="non_numeric",
                    datetime_format="%Y-%m-%d %H:%M:%S%.6f%:z",
                )
                copy.write(buffer.getbuffer())
        return frame.height
    placeholders = ", ".join("?" for _ in columns)
    cursor = _driver_connection(connection).cursor()
    for batch in _sqlite_values(frame).iter_slices(COPY_BATCH_ROWS):
        cursor.executemany(f"INSERT INTO {target} VALUES ({placeholders})", batch.iter_rows())
    return frame.height


BUILD_KEY_AFTER_LOAD_MIN_ROWS = 10_000


def insert_into_empty_table(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    """Initial load of an empty table: on Postgres, build the primary key after the rows.

    PostgreSQL builds an index by sorting far faster than it maintains one row by row
    (the manual's "Populating a Database" advice), so an initial load into a still-empty
    table drops the primary key, copies, and adds it back — all in the caller's
    transaction, under the entity lock: a failure rolls the whole thing back, and a
    duplicate key still fails the load. Anything else is a plain insert.
    """
    if not is_postgres(connection) or frame.height < BUILD_KEY_AFTER_LOAD_MIN_ROWS:
        return insert_frame(connection, table.name, frame)
    quoted = _quote(connection, table.name)
    if connection.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {quoted})").scalar():
        return insert_frame(connection, table.name, frame)
    key = sa.inspect(connection).get_pk_constraint(table.name)
    name, columns = (
        _quote(connection, key["name"]),
        _column_list(connection, key["constrained_columns"]),
    )
    connection.exec_driver_sql(f"ALTER TABLE {quoted} DROP CONSTRAINT {name}")
    written = insert_frame(connection, table.name, frame)
    connection.exec_driver_sql(
        f"ALTER TABLE {quoted} ADD CONSTRAINT {name} PRIMARY KEY ({columns})"
    )
    return written


def select_frame(
    connection: sa.Connection, query: sa.Select | sa.TextClause, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """Run a query and return its rows as a frame with the given column names and types."""
    compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
    sql = str(compiled)
    if is_postgres(connection):
        buffer = io.BytesIO()
        cursor = _driver_connection(connection).cursor()
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        return pl.read_csv(buffer, has_header=False, schema=schema, truncate_ragged_lines=False)
    cursor = _driver_connection(connection).cursor()  # plain tuples: twice as fast as Rows
    rows = cursor.execute(sql).fetchall()
    return pl.DataFrame(rows, schema=schema, orient="row")


def create_stage_table(connection: sa.Connection, like: sa.Table, columns: list[str]) -> str:
    """A temporary table with `like`'s types for `columns`, private to this connection.

    Temp tables are per-session on both dialects, so concurrent runs never see each
    other's staged rows; on Postgres it is dropped at commit.
    """
    name = f"stage_{like.name}_{uuid.uuid4().hex[:8]}"
    select = f"SELECT {_column_list(connection, columns)} FROM {_quote(connection, like.name)}"
    if is_postgres(connection):
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select} WITH NO DATA"
        )
    else:
        connection.exec_driver_sql(f"CREATE TEMP TABLE {name} AS {select} WHERE 0")
    return name


def drop_stage_table(connection: sa.Connection, name: str) -> None:
    """SQLite keeps temp tables until the connection closes; drop them after use."""
    if not is_postgres(connection):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")


def lock_entity(connection: sa.Connection, table_name: str) -> None:
    """Serialize writers of one entity for the rest of the transaction.

    Postgres: a transaction-scoped advisory lock keyed by table name. SQLite: the
    transaction already holds the database write lock (BEGIN IMMEDIATE).
    """
    if is_postgres(connection):
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
            {"name": f"sync_platform:entity:{table_name}"},
        )


def delete_in_batches(
    engine: sa.Engine, table: sa.Table, where: sa.ColumnElement[bool], batch_size: int = 50_000
) -> int:
    """DELETE the rows matching `where`, `batch_size` at a time, each batch its own
    transaction (a retention purge of millions of rows never holds one huge transaction or
    the SQLite write lock for long). Returns how many rows went."""
    total = 0
    while True:
        chosen = sa.select(table.c.id).where(where).limit(batch_size).scalar_subquery()
        with engine.begin() as connection:
            deleted = connection.execute(sa.delete(table).where(table.c.id.in_(chosen))).rowcount
        total += deleted
        if deleted < batch_size:
            return total
