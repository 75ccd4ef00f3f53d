"""The bulk layer writes every value exactly, whichever path it takes.

On PostgreSQL a frame whose column types map exactly onto the table's is written by binary
COPY (pgpq); any other frame as CSV. Both must store the same values as SQLite's
executemany: edge values of every column type the warehouse uses are written through each
path and read back."""

import platform
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import polars as pl
import psycopg
import pytest
import sqlalchemy as sa

from sync_platform.warehouse import bulk
from sync_platform.warehouse.platform_tables import Timestamp

TEXT = [
    "plain",
    "",
    'quote " comma , newline \n return \r tab \t backslash \\',
    "Ünïcødé 🚗 ١٢٣",
    "NULL",
    "\\N",
    None,
]
EDGES = pl.DataFrame(
    {
        "name": TEXT,
        "big": [-(2**63), 2**63 - 1, 0, -1, 1, 42, None],
        "small": pl.Series([-(2**31), 2**31 - 1, 0, -1, 1, 7, None], dtype=pl.Int32),
        "ratio": [0.1, -1.5e308, 2.2250738585072014e-308, 1 / 3, -0.0, 123456.789, None],
        "amount": pl.Series(  # within a double's 15 digits: SQLite stores NUMERIC as REAL
            ["-123456789.123456", "0.000001", "0.000000", "999999999.999999", "-0.5", "1", None],
            dtype=pl.String,
        ).cast(pl.Decimal(18, 6)),
        "price": pl.Series(
            ["9999999999.99", "-0.01", "0.00", "12.50", "-9999999999.99", "1.10", None],
            dtype=pl.String,
        ).cast(pl.Decimal(12, 2)),
        "flag": [True, False, None, True, False, True, None],
        "day": [
            date(1, 1, 1),
            date(9999, 12, 31),
            date(2024, 2, 29),
            date(1999, 12, 31),
            date(2000, 1, 1),
            date(1970, 1, 1),
            None,
        ],
        "at": pl.Series(
            [
                datetime(1, 1, 1, tzinfo=UTC),
                datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                datetime(2000, 1, 1, tzinfo=UTC),
                datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                datetime(2026, 12, 5, 13, 14, 15, 123456, tzinfo=UTC),
                None,
            ],
            dtype=pl.Datetime("us", "UTC"),
        ),
    }
)


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("name", sa.Text),
        sa.Column("big", sa.BigInteger),
        sa.Column("small", sa.Integer),
        sa.Column("ratio", sa.Double),
        sa.Column("amount", sa.Numeric(18, 6)),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("flag", sa.Boolean),
        sa.Column("day", sa.Date),
        sa.Column("at", Timestamp()),
    )


def _utc(value):
    """SQLite hands timestamps back naive: they are UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# Where pgpq publishes a wheel (the marker in pyproject.toml), PostgreSQL writes go binary.
BINARY = platform.machine() in ("x86_64", "AMD64") or sys.platform == "darwin"


def _write_and_read(
    engine: sa.Engine, frame: pl.DataFrame, name: str, table: sa.Table | None = None
) -> list[tuple]:
    table = _table(name) if table is None else table
    table.create(engine)
    with engine.begin() as connection:
        assert bulk.insert_frame(connection, name, frame) == frame.height
    with engine.connect() as connection:
        return [tuple(map(_utc, row)) for row in connection.execute(sa.select(table))]


def _expected(frame: pl.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame.iter_rows()]


@pytest.fixture
def copy_paths(monkeypatch) -> dict[str, int]:
    """Counts the COPY paths taken (the CSV path when the binary one is turned down)."""
    taken = {"binary": 0, "csv": 0}
    for path, function in (("binary", bulk._binary_payload), ("csv", bulk._csv_payload)):

        def counted(*args, _path=path, _function=function):
            taken[_path] += 1
            return _function(*args)

        monkeypatch.setattr(bulk, f"_{path}_payload", counted)
    return taken


def test_edge_values_of_every_column_type_round_trip(engine, copy_paths):
    assert _write_and_read(engine, EDGES, "edges") == _expected(EDGES)
    if engine.dialect.name == "postgresql":
        assert copy_paths == ({"binary": 1, "csv": 0} if BINARY else {"binary": 0, "csv": 1})


def test_the_csv_path_stores_the_same_values_as_the_binary_one(engine, copy_paths, monkeypatch):
    monkeypatch.setattr(bulk, "_binary_frame", lambda *args: None)
    assert _write_and_read(engine, EDGES, "edges_csv") == _expected(EDGES)
    if engine.dialect.name == "postgresql":
        assert copy_paths == {"binary": 0, "csv": 1}


def test_frames_whose_types_differ_from_the_table_are_stored_as_the_server_would_convert(
    engine, copy_paths
):
    """Naive and other-zone datetimes are UTC instants, narrower integers widen, an all-null
    column casts (binary); nanoseconds and text-for-numbers go as CSV, converted by the
    server."""
    sydney = timezone(timedelta(hours=11))
    instants = [datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC), None]
    loose = pl.DataFrame(
        {
            "name": pl.Series(["a", "b"], dtype=pl.Categorical),
            "big": pl.Series([1, None], dtype=pl.Int16),
            "small": pl.Series([None, None], dtype=pl.Null),
            "at": pl.Series([datetime(2026, 12, 5, 1, 2, 3, 456789), None]),
            "day": pl.Series([date(2026, 12, 5), None]),
        }
    )
    zoned = loose.with_columns(
        pl.col("at").dt.replace_time_zone("UTC").dt.convert_time_zone("Australia/Sydney")
    )
    for name, frame in (("naive", loose), ("zoned", zoned)):
        stored = _write_and_read(engine, frame, f"loose_{name}")
        assert [(row[0], row[1], row[2], row[8], row[7]) for row in stored] == [
            ("a", 1, None, instants[0], date(2026, 12, 5)),
            ("b", None, None, None, None),
        ]
        assert instants[0].astimezone(sydney) == stored[0][8]
    as_csv = pl.DataFrame(
        {
            "price": ["12.50", None],
            "at": pl.Series(instants, dtype=pl.Datetime("ns", "UTC")),
        }
    )
    stored = _write_and_read(engine, as_csv, "as_csv")
    assert [(row[5], row[8]) for row in stored] == [(Decimal("12.50"), instants[0]), (None, None)]
    if engine.dialect.name == "postgresql":
        assert copy_paths == ({"binary": 2, "csv": 1} if BINARY else {"binary": 0, "csv": 3})


@pytest.mark.parametrize("path", ["binary", "csv"])
def test_postgres_refuses_a_nul_character_on_either_path_and_keeps_nothing(
    pg_database, path, monkeypatch
):
    """The mapping step quarantines such values first (engine/mapping.py); were one to get
    through, the load fails whole rather than storing part of it."""
    from sync_platform.warehouse.connection import create_warehouse_engine

    if path == "csv":
        monkeypatch.setattr(bulk, "_binary_frame", lambda *args: None)
    engine = create_warehouse_engine(pg_database)
    table = _table("with_nul")
    table.create(engine)
    frame = pl.DataFrame({"name": ["fine", "bad\x00byte"]})
    with pytest.raises(psycopg.errors.DataError, match="0x00"), engine.begin() as connection:
        bulk.insert_frame(connection, "with_nul", frame)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("path", ["binary", "csv"])
def test_postgres_keeps_numerics_beyond_a_doubles_precision(pg_database, path, monkeypatch):
    from sync_platform.warehouse.connection import create_warehouse_engine

    if path == "csv":
        monkeypatch.setattr(bulk, "_binary_frame", lambda *args: None)
    wide = [
        Decimal("-1234567890123456789012345678.1234567890"),
        Decimal("9999999999999999999999999999.9999999999"),
        Decimal("0.0000000001"),
        None,
    ]
    frame = pl.DataFrame({"amount": pl.Series(wide, dtype=pl.Decimal(38, 10))})
    table = sa.Table("wide", sa.MetaData(), sa.Column("amount", sa.Numeric(38, 10)))
    engine = create_warehouse_engine(pg_database)
    assert _write_and_read(engine, frame, "wide", table) == [(value,) for value in wide]
    engine.dispose()
