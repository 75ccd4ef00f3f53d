"""Shared fixtures: a fresh warehouse per test on SQLite *and* PostgreSQL.

PostgreSQL is required, not optional: when it is unreachable every test that needs it
fails with a message saying how to point the suite at one (SYNC_PLATFORM_TEST_PG_URL).
Each test gets its own database, cloned from a migrated template, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sync_platform.config import all_source_configs
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.schema import upgrade_warehouse

PG_URL_ENV = "SYNC_PLATFORM_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DIALECTS = ["sqlite", "postgresql"]


def all_entities():
    return [entity for source in all_source_configs() for entity in source.entities.values()]


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required by this test suite and is not reachable at "
            f"{redacted(url)} ({exc.orig}). Start it, or set {PG_URL_ENV} to a server where "
            "the user may create databases.",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return url


def database_url(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    engine = _admin_engine(admin_url)
    with engine.connect() as connection:
        suffix = f" TEMPLATE {template}" if template else ""
        connection.execute(sa.text(f'CREATE DATABASE "{name}"{suffix}'))
    engine.dispose()
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    engine = _admin_engine(admin_url)
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that each test's database is cloned from (fast CREATE … TEMPLATE)."""
    name = f"sync_platform_test_template_{uuid.uuid4().hex[:8]}"
    url = create_database(pg_admin_url, name)
    engine = create_warehouse_engine(url)
    upgrade_warehouse(engine, all_entities())
    engine.dispose()
    yield name
    drop_database(pg_admin_url, name)


@pytest.fixture
def pg_database(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """URL of a new, migrated PostgreSQL warehouse for one test."""
    name = f"sync_platform_test_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_admin_url, name, template=pg_template)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture
def empty_pg_database(pg_admin_url: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database (no tables)."""
    name = f"sync_platform_test_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_admin_url, name)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(params=DIALECTS)
def warehouse_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, migrated warehouse: the same test runs once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        engine = create_warehouse_engine(url)
        upgrade_warehouse(engine, all_entities())
        engine.dispose()
        return url
    return request.getfixturevalue("pg_database")


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[sa.Engine]:
    engine = create_warehouse_engine(warehouse_url)
    yield engine
    engine.dispose()
