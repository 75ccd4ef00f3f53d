"""The production instance config is exercised, not just written: a job run and a daemon
tick land in Dagster's own PostgreSQL storage (a database separate from the warehouse),
configured only through the documented environment variables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform_simulator.background_server import free_port, wait_for_port
from sync_platform_tests.conftest import create_database, drop_database

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def production_home(tmp_path, pg_admin_url):
    """DAGSTER_HOME holding the repo's production dagster.yaml, storage in a fresh database."""
    name = f"sync_platform_test_dagster_{uuid.uuid4().hex[:8]}"
    url = create_database(pg_admin_url, name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    yield home, url
    drop_database(pg_admin_url, name)


def _pg_variables(dagster_url: str) -> dict[str, str]:
    """The documented DAGSTER_PG_* variables for a database URL."""
    url = sa.make_url(dagster_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }


def _environment(home: Path, dagster_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), **_pg_variables(dagster_url), **extra}


def test_a_job_run_is_stored_in_the_production_instance(
    production_home, simulator, pg_database, monkeypatch
):
    home, dagster_url = production_home
    env = _environment(
        home,
        dagster_url,
        SYNC_PLATFORM_WAREHOUSE_URL=pg_database,
        DEALER_FEED_BASE_URL=f"{simulator.url}/dealer",
        DEALER_FEED_API_KEY="sim-dealer-key",
    )
    result = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "sync_platform.definitions",
            "-j",
            "dealer_sync",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    for name, value in _pg_variables(dagster_url).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [(run.job_name, run.status) for run in runs] == [
            ("dealer_sync", dg.DagsterRunStatus.SUCCESS)
        ]
        materialized = instance.fetch_materializations(dg.AssetKey("dealer_stock"), limit=10)
        assert len(materialized.records) == 1
        checks = instance.get_records_for_run(
            runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        evaluations = {
            r.event_log_entry.dagster_event.event_specific_data.check_name for r in checks
        }
        assert {"schema_valid", "in_step_with_source", "quarantine_rate"} <= evaluations
    # …and it is really Dagster's PostgreSQL database that holds them, not the warehouse.
    engine = sa.create_engine(dagster_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 1
    engine.dispose()
    warehouse = sa.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
    assert "runs" not in sa.inspect(warehouse).get_table_names()
    warehouse.dispose()


def test_the_daemon_ticks_every_sensor_through_the_production_workspace_without_errors(
    production_home, pg_database, monkeypatch
):
    """A first start of production with no source configured: every sensor ticks (skipping,
    or deciding), and none of them errors."""
    home, dagster_url = production_home
    port = free_port()
    env = _environment(
        home,
        dagster_url,
        SYNC_PLATFORM_WAREHOUSE_URL=pg_database,
        SYNC_PLATFORM_CODE_SERVER_HOST="127.0.0.1",
        SYNC_PLATFORM_CODE_SERVER_PORT=str(port),
    )
    code_server = subprocess.Popen(
        [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-m",
            "sync_platform.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = None
    watched = {"alert_rules_sensor", "sync_gap_sensor", "webhook_inbox_sensor"}
    for name, value in _pg_variables(dagster_url).items():
        monkeypatch.setenv(name, value)
    try:
        wait_for_port(port, 90, "the code server")
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "deploy/production/workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ticks: dict[str, list[str]] = {}
        deadline = time.monotonic() + 150
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.monotonic() < deadline and not watched <= set(ticks):
                time.sleep(3)
                ticks = {
                    state.instigator_name: [
                        tick.status.value
                        for tick in instance.get_ticks(
                            state.instigator_origin_id, state.selector_id
                        )
                    ]
                    for state in instance.all_instigator_state()
                }
                ticks = {name: statuses for name, statuses in ticks.items() if statuses}
    finally:
        for process in (daemon, code_server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    assert watched <= set(ticks), f"sensors that never ticked in 150 s: {watched - set(ticks)}"
    failed = {name: statuses for name, statuses in ticks.items() if "FAILURE" in statuses}
    assert not failed, failed
