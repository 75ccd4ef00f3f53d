"""The warehouse's PostgreSQL server stopped hard (`pg_ctl stop -m immediate`: no shutdown
checkpoint, every connection cut) while a sync writes, on a throwaway cluster this test
starts itself and stops by its own data directory. The sync fails with the typed error an
operator can act on; after the server is back the data is wholly before or wholly after the
sync, the dead sync is closed as abandoned by the next one, and the re-run converges."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_tests.conftest import all_entities

COUNT = 60_000
SYNC = textwrap.dedent(
    """
    import sys
    from sync_platform.engine.pipeline import run_entity_sync
    from sync_platform.engine.ports import EntitySource, SyncRequest
    from sync_platform.warehouse.connection import create_warehouse_engine
    from sync_platform_tests.records import LEADS, lead

    import time
    from pathlib import Path

    url, count, handshake = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    records = [lead(i, updated=f"2026-11-01T09:{(i // 60) % 60:02d}:{i % 60:02d}Z")
               for i in range(count)]

    def pages(since):
        yield from (records[i:i + 5000] for i in range(0, count, 5000))
        # every page handed over, the sync under way: wait while the test stops the server
        (handshake / "fetched").touch()
        deadline = time.monotonic() + 60
        while not (handshake / "stopped").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    source = EntitySource(pages=pages)
    engine = create_warehouse_engine(url)
    report = run_entity_sync(engine, SyncRequest("dealer_feed", LEADS), source)
    print(report.merge.inserted)
    """
)


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("pg_ctl is not installed: this test starts its own PostgreSQL")
    return Path(pg_ctl).parent


class Cluster:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port."""

    def __init__(self, directory: Path):
        self.bin = _pg_bin()
        self.data = directory / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as `postgres`
            shutil.chown(directory, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *arguments: str) -> None:
        subprocess.run(
            [*self.as_owner, str(self.bin / tool), *arguments], check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.data / "server.log"), "start")  # fmt: skip

    def stop_immediately(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        subprocess.run(
            [*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: the server's user must be able to reach its directory.
    home = Path(tempfile.mkdtemp(prefix="sync_platform_pg_"))
    try:
        cluster = Cluster(home)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def state(url: str) -> tuple[int, list[tuple[str, str | None]]]:
    engine = create_warehouse_engine(url)
    with engine.connect() as connection:
        leads = connection.execute(sa.text("SELECT count(*) FROM dealer_leads")).scalar()
        runs = connection.execute(sa.text("SELECT status, message FROM sync_runs ORDER BY id"))
        result = (leads, [tuple(row) for row in runs])
    engine.dispose()
    return result


def test_the_server_stopped_hard_mid_sync(cluster):
    engine = create_warehouse_engine(cluster.url)
    upgrade_warehouse(engine, all_entities())
    engine.dispose()
    handshake = Path(tempfile.mkdtemp(prefix="sync_platform_handshake_"))
    sync = subprocess.Popen(
        [sys.executable, "-c", SYNC, cluster.url, str(COUNT), str(handshake)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the sync holds its lease and its open audit row, its records read: stopped then, not
    # after a guessed number of seconds (a faster start once let the sync finish first)
    deadline = time.monotonic() + 120
    while not (handshake / "fetched").exists():
        assert sync.poll() is None and time.monotonic() < deadline, sync.stderr.read()
        time.sleep(0.05)
    cluster.stop_immediately()
    (handshake / "stopped").touch()
    _, stderr = sync.communicate(timeout=120)

    assert sync.returncode == 1, stderr
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("sync_platform.errors.WarehouseUnavailableError: ")
    assert "What to do: check SYNC_PLATFORM_WAREHOUSE_URL and that the database is up" in error

    cluster.start()
    leads, runs = state(cluster.url)
    assert leads in (0, COUNT)  # wholly before or wholly after, never a mix
    assert [status for status, _ in runs] in (["running"], ["failed"])
    rerun = subprocess.run(  # "stopped" is there: this one does not wait
        [sys.executable, "-c", SYNC, cluster.url, str(COUNT), str(handshake)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    leads, runs = state(cluster.url)
    assert leads == COUNT
    (dead_status, dead_message), (status, _) = runs
    assert (dead_status, status) == ("failed", "succeeded")
    assert dead_message.startswith("abandoned") or "lost the warehouse connection" in dead_message
    shutil.rmtree(handshake)
