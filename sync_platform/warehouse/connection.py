"""Create the warehouse engine for either dialect, with the settings each one needs.

SQLite (embedded default) gets WAL, full fsync, foreign keys and a busy timeout, and every
transaction takes the write lock up front (BEGIN IMMEDIATE) so two writers queue instead of
failing mid-transaction; a caller that only reads can ask for a deferred BEGIN.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sync_platform.errors import ConfigurationError, WarehouseUnavailableError
from sync_platform.settings import WAREHOUSE_URL_ENV

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = {"sqlite_deferred": True}  # execution option: a plain BEGIN on SQLite


def normalize_url(url: str) -> sa.URL:
    """Accept the usual spellings (postgres://, postgresql://) and pick psycopg 3."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            f"warehouse URL is not a valid database URL ({exc.__class__.__name__})",
            hint="use sqlite:///path/to/file.db or postgresql://user:pass@host:5432/db",
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"warehouse dialect {parsed.get_backend_name()!r} is not supported",
            hint="use SQLite (embedded default) or PostgreSQL",
        )
    return parsed


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        deferred = connection.get_execution_options().get("sqlite_deferred")
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def create_warehouse_engine(url: str) -> sa.Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled connections may be checked out by another thread than the one that opened
        # them (Dagster, the receiver): each is used by one thread at a time.
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        # Timestamps leave Postgres as UTC text (+00), which the COPY readers parse.
        connect_args={"options": "-c timezone=UTC"},
    )


def redacted(url: str) -> str:
    """The URL with its password masked, for logs and error messages."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except ConfigurationError:
        return "<unparseable URL>"


# What drivers say when the connection itself is gone (not a problem with the statement).
_DISCONNECTED = (
    "connection failed",
    "could not connect",
    "connection refused",
    "connection is lost",
    "server closed the connection",
    "terminating connection",
    "connection already closed",
    "the connection is closed",
    "ssl connection has been closed",
    "unable to open database file",
)


def lost_connection(exc: BaseException) -> bool:
    """Whether a database error means the warehouse cannot be reached or the connection to
    it broke, rather than a statement that failed."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and any(
        marker in text for marker in _DISCONNECTED
    )


def unreachable(
    url: str, exc: BaseException, during: str | None = None
) -> WarehouseUnavailableError:
    """The error an operator sees for a warehouse that cannot be reached (`during` None) or
    was lost during something: where, the driver's first line, and what to do."""
    cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300] if str(exc) else ""
    what = (
        f"lost the warehouse connection to {redacted(url)} during {during}"
        if during
        else (f"cannot reach the warehouse at {redacted(url)}")
    )
    return WarehouseUnavailableError(
        f"{what} ({cause})",
        hint=f"check {WAREHOUSE_URL_ENV} and that the database is up and accepts connections",
    )
