"""What the HTTP layer shares between processes: circuit breakers and per-API rate limits.

Dagster runs every step in a process of its own, and every run too, so a breaker or a rate
limiter kept in memory only knows its own calls: GA4's budget of about ten server errors an
hour, or Sheets' 60 reads a minute, would be spent again by every step. Once a process is
bound to a database (`share_through(engine)`, which the sync assets do with the warehouse),

- each source's circuit breaker keeps its state in `sync_circuit_breakers` (pybreaker with a
  storage over that table: reads are plain SELECTs, a write happens only when something
  changes, so a healthy source costs two small reads a request and never the write lock);
- each rate-limited identity counts its calls in a pyrate-limiter bucket in the same
  PostgreSQL database (`ratelimit___<table>`), or, for the embedded SQLite warehouse, in a
  file beside it (`<warehouse>.ratelimits.db`, with a file lock), so the warehouse's own
  write lock is never taken for it.

- the last quota reading of each rate-limited subject (a GA4 property's `propertyQuota`)
  is kept in `sync_quota_readings`, so every report and run starts from what the last one
  was told was left.

Unbound (a client in a test or a script), all of it stays in memory, as before. If the database
cannot be read, a breaker falls back to closed and says so in the log: the sync then fails
on its own errors, never on the breaker's bookkeeping.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pybreaker
import sqlalchemy as sa
from pyrate_limiter import InMemoryBucket, Limiter, Rate, SQLiteBucket

from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.platform_tables import sync_circuit_breakers, sync_quota_readings

log = logging.getLogger("sync_platform.http")

_engine: sa.Engine | None = None
_limiters: dict[tuple[str, str], Limiter] = {}
_readings: dict[tuple[str, str], tuple[dict, datetime]] = {}  # unbound
_lock = threading.Lock()


def share_through(engine: sa.Engine) -> None:
    """From now on, this process keeps breaker state and rate limits in `engine`'s database."""
    global _engine
    with _lock:
        if _engine is not None and _engine.url == engine.url:
            return
        _engine = engine
        _close_limiters()


def unbind() -> None:
    """Back to per-process state (tests; a process done with its warehouse)."""
    global _engine
    with _lock:
        _engine = None
        _close_limiters()
        _readings.clear()


def _close_limiters() -> None:
    """Stop the limiters' leak threads and close their connections: a limiter left open
    keeps leaking into a database that may be gone."""
    for limiter in _limiters.values():
        limiter.close()
    _limiters.clear()


def bound_engine() -> sa.Engine | None:
    return _engine


def breaker_storage(name: str) -> pybreaker.CircuitBreakerStorage:
    """Where the breaker called `name` keeps its state: the bound database, else memory."""
    if _engine is None:
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    return TableBreakerStorage(_engine, name)


class TableBreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's state in one row of `sync_circuit_breakers`."""

    def __init__(self, engine: sa.Engine, name: str):
        super().__init__(name)
        self.engine = engine
        self._where = sync_circuit_breakers.c.name == name

    def _read(self) -> sa.Row | None:
        try:
            with self.engine.connect().execution_options(**READ_ONLY) as connection:
                return connection.execute(
                    sa.select(sync_circuit_breakers).where(self._where)
                ).first()
        except sa.exc.SQLAlchemyError as exc:
            log.warning(
                "breaker %s: cannot read its shared state (%s); assuming closed", self.name, exc
            )
            return None

    def _write(self, **values) -> None:
        values["updated_at"] = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                updated = connection.execute(
                    sa.update(sync_circuit_breakers).where(self._where).values(values)
                ).rowcount
                if not updated:
                    connection.execute(
                        sa.insert(sync_circuit_breakers).values(
                            {"name": self.name, "state": pybreaker.STATE_CLOSED, **values}
                        )
                    )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("breaker %s: cannot write its shared state (%s)", self.name, exc)

    @property
    def state(self) -> str:
        row = self._read()
        return row.state if row else pybreaker.STATE_CLOSED

    @state.setter
    def state(self, state: str) -> None:
        if self.state != state:
            self._write(state=str(state))

    @property
    def counter(self) -> int:
        row = self._read()
        return row.fail_counter if row else 0

    @property
    def success_counter(self) -> int:
        row = self._read()
        return row.success_counter if row else 0

    def _increment(self, column: str) -> None:
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                column_ = sync_circuit_breakers.c[column]
                updated = connection.execute(
                    sa.update(sync_circuit_breakers)
                    .where(self._where)
                    .values({column: column_ + 1, "updated_at": now})
                ).rowcount
                if not updated:
                    connection.execute(
                        sa.insert(sync_circuit_breakers).values(
                            name=self.name,
                            state=pybreaker.STATE_CLOSED,
                            updated_at=now,
                            **{column: 1},
                        )
                    )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("breaker %s: cannot write its shared state (%s)", self.name, exc)

    def increment_counter(self) -> None:
        self._increment("fail_counter")

    def reset_counter(self) -> None:
        if self.counter:
            self._write(fail_counter=0)

    def increment_success_counter(self) -> None:
        self._increment("success_counter")

    def reset_success_counter(self) -> None:
        if self.success_counter:
            self._write(success_counter=0)

    @property
    def opened_at(self) -> datetime | None:
        row = self._read()
        moment = row.opened_at if row else None
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment

    @opened_at.setter
    def opened_at(self, moment: datetime) -> None:
        self._write(opened_at=moment)


def rate_limiter(identity: str, rate: Rate) -> Limiter:
    """The limiter every client of `identity` shares (blocking until a slot is free): in the
    bound database across processes, else in this process's memory."""
    with _lock:
        engine = _engine
        key = (identity, f"{rate.limit}/{rate.interval}:{engine.url if engine else ''}")
        if key not in _limiters:
            _limiters[key] = Limiter(_bucket(identity, rate, engine))
        return _limiters[key]


def _bucket(identity: str, rate: Rate, engine: sa.Engine | None):
    if engine is None:
        return InMemoryBucket([rate])
    table = "sync_" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    if engine.dialect.name == "sqlite":
        database = Path(engine.url.database or "warehouse.db")
        path = database.with_name(database.name + ".ratelimits.db")
        return SQLiteBucket.init_from_file(
            [rate], table=table, db_path=str(path), use_file_lock=True
        )
    from psycopg_pool import ConnectionPool
    from pyrate_limiter import PostgresBucket

    url = engine.url.set(drivername="postgresql")
    pool = ConnectionPool(
        url.render_as_string(hide_password=False), min_size=1, max_size=2, open=True
    )
    return PostgresBucket(pool, table, [rate])


def last_reading(source: str, subject: str) -> tuple[dict, datetime] | None:
    """What `source` last said was left of `subject`'s quota, and when; None if nothing was
    recorded (or the database cannot be read: the request then meets the quota itself)."""
    engine = _engine
    if engine is None:
        return _readings.get((source, subject))
    table = sync_quota_readings
    try:
        with engine.connect().execution_options(**READ_ONLY) as connection:
            row = connection.execute(
                sa.select(table.c.reading, table.c.read_at).where(
                    table.c.source == source, table.c.subject == subject
                )
            ).first()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not read the quota of %s %s: %s", source, subject, exc)
        return None
    return (row.reading, row.read_at) if row else None


def remember_reading(
    source: str, subject: str, reading: dict, read_at: datetime, *, again: bool = True
) -> None:
    """Keep the newest quota reading for every process; a failure to write is logged only."""
    engine = _engine
    if engine is None:
        _readings[(source, subject)] = (reading, read_at)
        return
    table = sync_quota_readings
    where = (table.c.source == source, table.c.subject == subject)
    values = {"reading": reading, "read_at": read_at}
    try:
        with engine.begin() as connection:
            if not connection.execute(sa.update(table).where(*where).values(values)).rowcount:
                connection.execute(
                    sa.insert(table).values(source=source, subject=subject, **values)
                )
    except sa.exc.IntegrityError as exc:  # another process inserted it first: update it
        if again:
            remember_reading(source, subject, reading, read_at, again=False)
        else:
            log.warning("could not keep the quota of %s %s: %s", source, subject, exc)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not keep the quota of %s %s: %s", source, subject, exc)
