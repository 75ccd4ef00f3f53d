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
from sync_platform.defs.dealer_feed.resources import DealerFeedResource
from sync_platform.warehouse.connection import create_warehouse_engine, redacted
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_tests.dagster_runs import run_job

PG_URL_ENV = "SYNC_PLATFORM_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DIALECTS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The short soak (six minutes, one test) first: under `make test`'s workers it then runs
    beside the rest of the suite instead of after it."""
    items.sort(key=lambda item: "test_soak.py" not in item.nodeid)


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


@pytest.fixture(scope="session")
def simulator_server():
    """One simulator for the session, served over real loopback HTTP."""
    from sync_platform_simulator.server import SimulatorServer

    with SimulatorServer() as server:
        yield server


class SimulatorControl:
    """The simulator's control API (/_sim), as a test drives it."""

    def __init__(self, url: str):
        import httpx

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def reset(self, seed: int = 42, stock: int = 200, leads: int = 100) -> None:
        self.http.post(
            "/_sim/reset", json={"seed": seed, "dealer": {"stock": stock, "leads": leads}}
        ).raise_for_status()

    def faults(self, **plan) -> None:
        self.http.post("/_sim/faults", json=plan).raise_for_status()

    def mutate_stock(self, **changes) -> dict:
        response = self.http.post("/_sim/dealer/mutate", json=changes)
        response.raise_for_status()
        return response.json()

    def mutate_leads(self, **changes) -> dict:
        response = self.http.post("/_sim/dealer/leads/mutate", json=changes)
        response.raise_for_status()
        return response.json()

    def put_stock(self, stock_number: str, record: dict) -> None:
        self.http.put(f"/_sim/dealer/stock/{stock_number}", json=record).raise_for_status()

    def stats(self) -> dict:
        return self.http.get("/_sim/stats").json()

    def served(self, path_prefix: str = "") -> dict[tuple[str, int], int]:
        """Source requests served since the last reset, as {(path, status): count}."""
        return {
            (row["path"], row["status"]): row["count"]
            for row in self.stats()["requests"]
            if row["path"].startswith(path_prefix)
        }

    def erp(self, method: str, path: str, body=None):
        """A call to the legacy ERP's control API (/_sim/erp/...); its JSON answer."""
        response = self.http.request(method, f"/_sim/erp{path}", json=body)
        response.raise_for_status()
        return response.json()

    def sheets(self, method: str, path: str, body=None):
        """A call to the seller sheet's control API (/_sim/sheets/...); its JSON answer."""
        response = self.http.request(method, f"/_sim/sheets{path}", json=body)
        response.raise_for_status()
        return response.json()

    def ga4(self, method: str, path: str, body=None):
        """A call to GA4's control API (/_sim/ga4/...); its JSON answer."""
        response = self.http.request(method, f"/_sim/ga4{path}", json=body)
        response.raise_for_status()
        return response.json()

    def google(self, method: str, path: str, body=None):
        """A call to the Google service account's control API (/_sim/google/...)."""
        response = self.http.request(method, f"/_sim/google{path}", json=body)
        response.raise_for_status()
        return response.json()

    def n8n(self, method: str, path: str, body=None):
        """A call to n8n's control API (/_sim/n8n/...); its JSON answer."""
        response = self.http.request(method, f"/_sim/n8n{path}", json=body, timeout=300)
        response.raise_for_status()
        return response.json()

    def send_webhooks(self, target: str, workflow_key: str, count: int, **options) -> dict:
        """Run `count` simulated n8n executions that deliver to the receiver at `target`
        (options: duplicate_rate, drop_rate, delay_ms, seed, concurrency, …); the report."""
        body = {"target": target, "workflow_key": workflow_key, "count": count, **options}
        return self.n8n("POST", "/send", body)


@pytest.fixture
def simulator(simulator_server) -> SimulatorControl:
    """The session simulator, reset to a known state (seed 42, 200 vehicles, 100 leads)."""
    from sync_platform.sources import shared_state
    from sync_platform.sources.http_session import reset_breakers

    control = SimulatorControl(simulator_server.url)
    control.reset()
    shared_state.unbind()  # a sync asset of an earlier test bound it to that test's warehouse
    reset_breakers()
    yield control
    control.http.close()


@pytest.fixture
def source_env(simulator, warehouse_url, monkeypatch):
    """Environment for running the code location against the simulator and this warehouse."""
    from sync_platform_simulator.environment import simulator_environment

    monkeypatch.setenv("SYNC_PLATFORM_WAREHOUSE_URL", warehouse_url)
    for name, value in simulator_environment(simulator.url).items():
        monkeypatch.setenv(name, value)
    return simulator


@pytest.fixture
def n8n_receiver(simulator, warehouse_url):
    """The webhook receiver on this test's warehouse, accepting the simulator's n8n workflows
    (their secrets from the simulator's environment). `.url` is its base URL."""
    from sync_platform.receiver import ReceiverSettings
    from sync_platform_simulator.environment import simulator_environment
    from sync_platform_tests.servers import receiver_server

    environment = simulator_environment(simulator.url)
    settings = ReceiverSettings.from_env(environment, warehouse_url=warehouse_url)
    with receiver_server(settings) as server:
        yield server


@pytest.fixture
def synced(source_env, warehouse_url):
    """The dealer feed synced once: the warehouse engine and the dealer resource, built from
    the environment as the CLI builds it."""
    assert run_job().success
    engine = create_warehouse_engine(warehouse_url)
    yield engine, DealerFeedResource.from_env().process_config_and_initialize()
    engine.dispose()
