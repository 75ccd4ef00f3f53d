"""The thin dialect layer: move polars frames in and out of the warehouse fast.

Postgres uses COPY in both directions, in batches so a million-row load never holds its
whole payload in memory. Writes use the binary format (Arrow columns encoded by pgpq) when
every column's polars type maps exactly onto its target column's type: the server parses
binary values for about half the CPU of CSV text, which halves a large load. Any other
frame (and every frame where pgpq has no wheel) is written as CSV, as are reads (polars
parses them). SQLite uses the driver's executemany inside the caller's transaction, its
fastest write path. Everything above this module is dialect-free.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import polars as pl
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter

try:  # no wheel for Linux on ARM (the marker in pyproject.toml): writes go as CSV there
    import pgpq
except ImportError:
    pgpq = None

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


# PostgreSQL type OIDs and the polars type whose Arrow form pgpq encodes in that type's
# binary COPY format (timestamptz and timestamp share one: microseconds since 2000, UTC for
# timestamptz). numeric takes any polars Decimal.
BINARY_DTYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    23: pl.Int32(),
    25: pl.String(),
    701: pl.Float64(),
    1082: pl.Date(),
    1184: pl.Datetime("us", "UTC"),
}
NUMERIC_OID = 1700
_WIDER_INTEGERS = {pl.Int8(), pl.Int16(), pl.Int32()}


def _as_binary_column(name: str, dtype: pl.DataType, oid: int) -> pl.Expr | None:
    """`name` as the polars type binary COPY writes into a column of type `oid`, when the
    conversion is exact (the value a CSV load would store); else None."""
    column = pl.col(name)
    if dtype == pl.Null:
        return column.cast(BINARY_DTYPES[oid]) if oid in BINARY_DTYPES else None
    if oid == NUMERIC_OID:
        return column if isinstance(dtype, pl.Decimal) else None
    wanted = BINARY_DTYPES.get(oid)
    if wanted is None:
        return None
    if dtype == wanted:
        return column
    if wanted == pl.Int64 and dtype in _WIDER_INTEGERS:
        return column.cast(pl.Int64)
    if wanted == pl.String and isinstance(dtype, pl.Categorical | pl.Enum):
        return column.cast(pl.String)
    if isinstance(wanted, pl.Datetime) and isinstance(dtype, pl.Datetime):
        if dtype.time_unit == "ns":  # CSV would truncate to microseconds; cast may floor
            return None
        # Naive datetimes are UTC, as the session's time zone makes them in CSV.
        if dtype.time_zone is None:
            column = column.dt.replace_time_zone("UTC")
        elif dtype.time_zone != "UTC":
            column = column.dt.convert_time_zone("UTC")
        return column.dt.cast_time_unit("us")
    return None


def _binary_frame(cursor, columns_query: str, frame: pl.DataFrame) -> pl.DataFrame | None:
    """`frame` cast for a binary COPY into the columns `columns_query` selects, or None if
    a column has no exact binary form (CSV then writes it, with the server's conversions)."""
    cursor.execute(columns_query)
    columns = []
    for (name, dtype), described in zip(frame.schema.items(), cursor.description, strict=True):
        column = _as_binary_column(name, dtype, described.type_code)
        if column is None:
            return None
        columns.append(column.alias(name))
    return frame.select(columns)


def _binary_payload(frame: pl.DataFrame) -> Iterator[bytes]:
    """`frame` in PostgreSQL's binary COPY format, a 100k-row batch at a time."""
    encoder = None
    for batch in frame.iter_slices(COPY_BATCH_ROWS):
        for record_batch in batch.to_arrow().to_batches():
            if encoder is None:
                encoder = pgpq.ArrowToPostgresBinaryEncoder(record_batch.schema)
                yield encoder.write_header()
            yield encoder.write_batch(record_batch)
    yield encoder.finish()


def _csv_payload(frame: pl.DataFrame) -> Iterator[memoryview]:
    """`frame` as COPY's CSV, a 100k-row batch at a time."""
    for batch in frame.iter_slices(COPY_BATCH_ROWS):
        buffer = io.BytesIO()
        batch.write_csv(
            buffer,
            include_header=False,
            quote_style="non_numeric",
            datetime_format="%Y-%m-%d %H:%M:%S%.6f%:z",
        )
        yield buffer.getbuffer()


def insert_frame(connection: sa.Connection, table_name: str, frame: pl.DataFrame) -> int:
    """Append every row of `frame` to `table_name` (columns by name). Returns rows written."""
    if frame.height == 0:
        return 0
    columns = frame.columns
    target = f"{_quote(connection, table_name)} ({_column_list(connection, columns)})"
    if is_postgres(connection):
        cursor = _driver_connection(connection).cursor()
        columns_query = (
            f"SELECT {_column_list(connection, columns)} "
            f"FROM {_quote(connection, table_name)} WHERE false"
        )
        binary = _binary_frame(cursor, columns_query, frame) if pgpq else None
        if binary is not None:
            copy_format, payload = "binary", _binary_payload(binary)
        else:
            copy_format, payload = "csv", _csv_payload(frame)
        # The queued writer sends from a worker thread while the next batch is encoded.
        with cursor.copy(
            f"COPY {target} FROM STDIN (FORMAT {copy_format})", writer=QueuedLibpqWriter(cursor)
        ) as copy:
            for chunk in payload:
                copy.write(chunk)
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
