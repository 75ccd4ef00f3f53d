"""The PostgreSQL server the benchmarks run on, and the throwaway databases they make there.

One place for the server's address (SYNC_PLATFORM_BENCH_PG_URL, else the local server) and
for creating and dropping a database, so every bench cleans up the same way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from sync_platform.warehouse.connection import normalize_url

PG_URL_ENV = "SYNC_PLATFORM_BENCH_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    """The URL of a database on the bench server that the benches may create others from."""
    return os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)


def _admin() -> sa.Engine:
    return sa.create_engine(normalize_url(_admin_url()), isolation_level="AUTOCOMMIT")


@contextmanager
def throwaway_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """A new database on the bench server (its URL), dropped afterwards unless `keep`."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(_admin_url()).set(database=name).render_as_string(False)
        finally:
            if keep:
                print(f"kept database {name}")
            else:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def server_version() -> str:
    """The bench server's PostgreSQL version, or "unreachable"."""
    admin = _admin()
    try:
        with admin.connect() as connection:
            return connection.exec_driver_sql("SHOW server_version").scalar()
    except sa.exc.OperationalError:
        return "unreachable"
    finally:
        admin.dispose()
