"""A sync killed at any point leaves old data with the old cursor or new data with the new
cursor, never a mix; re-running it converges to the clean result."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from sync_platform.settings import CRASHPOINT_ENV

SCRIPT = textwrap.dedent(
    """
    import sys
    from sync_platform.engine.pipeline import run_entity_sync
    from sync_platform.engine.ports import EntitySource, SyncRequest
    from sync_platform.warehouse.connection import create_warehouse_engine
    from sync_platform_tests.records import LEADS, lead

    url, count = sys.argv[1], int(sys.argv[2])
    records = [lead(i, updated=f"2026-11-0{1 + i // 1000}T09:{(i // 60) % 60:02d}:{i % 60:02d}Z")
               for i in range(count)]
    source = EntitySource(pages=lambda since: [records[i:i + 500] for i in range(0, count, 500)])
    engine = create_warehouse_engine(url)
    report = run_entity_sync(engine, SyncRequest("dealer_feed", LEADS), source)
    print(report.merge.inserted, report.merge.updated, report.cursor_after)
    """
)


def run_sync(url: str, count: int, crashpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ}
    env.pop(CRASHPOINT_ENV, None)
    if crashpoint:
        env[CRASHPOINT_ENV] = crashpoint
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(engine: sa.Engine) -> tuple:
    with engine.connect() as connection:
        leads = connection.execute(sa.text("SELECT count(*) FROM dealer_leads")).scalar()
        cursor = connection.execute(
            sa.text("SELECT cursor FROM sync_state WHERE entity = 'dealer_leads'")
        ).scalar()
        statuses = [
            r[0] for r in connection.execute(sa.text("SELECT status FROM sync_runs ORDER BY id"))
        ]
    return leads, cursor, statuses


@pytest.mark.parametrize("crashpoint", ["merge:before_state", "merge:before_commit"])
def test_kill_during_merge_leaves_neither_data_nor_cursor(engine, warehouse_url, crashpoint):
    clean = run_sync(warehouse_url, 1500)
    assert clean.returncode == 0, clean.stderr
    first_state = snapshot(engine)
    assert first_state[0] == 1500

    killed = run_sync(warehouse_url, 2500, crashpoint=crashpoint)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no cleanup ran

    leads, cursor, statuses = snapshot(engine)
    assert (leads, cursor) == first_state[:2]  # old data, old cursor
    assert statuses == ["succeeded", "running"]  # the dead run left its trace

    rerun = run_sync(warehouse_url, 2500)
    assert rerun.returncode == 0, rerun.stderr
    inserted, updated, cursor_after = rerun.stdout.split()
    assert (int(inserted), int(updated)) == (1000, 0)
    assert snapshot(engine)[0] == 2500
    assert cursor_after.startswith("2026-11-03T09:41:39")  # newest UpdatedAt
