"""A sync killed at any point leaves old data with the old cursor or new data with the new
cursor, never a mix; re-running it converges to the clean result."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sync_platform.settings import CRASHPOINT_ENV
from sync_platform.warehouse.platform_tables import sync_leases, sync_runs

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


def runs(engine: sa.Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text("SELECT status, message FROM sync_runs ORDER BY id")
            )
        ]


@pytest.mark.parametrize(
    ("crashpoint", "outcome"),
    [
        ("merge:before_commit", "it changed nothing (its merge never committed)"),
        ("sync:after_merge", "its merge had committed: the data it read is in, not verified"),
    ],
)
def test_a_killed_sync_is_closed_as_abandoned_by_the_next_one(
    engine, warehouse_url, crashpoint, outcome
):
    killed = run_sync(warehouse_url, 1500, crashpoint=crashpoint)
    assert killed.returncode == -9, killed.stderr
    assert [status for status, _ in runs(engine)] == ["running"]

    rerun = run_sync(warehouse_url, 1500)

    assert rerun.returncode == 0, rerun.stderr
    (dead, dead_message), (status, _) = runs(engine)
    assert (dead, status) == ("failed", "succeeded")
    assert dead_message.startswith("abandoned: pid ")
    assert "stopped without finishing (its process is gone)" in dead_message
    assert dead_message.endswith(outcome)


def test_syncs_left_running_are_closed_by_the_alert_run_and_count_as_failures(
    engine, warehouse_url, source_env
):
    """Three syncs killed in a row after their merge: each one's successor closes it as it
    takes the lease over, the periodic alert run closes the last (nothing started since), and
    three failures in a row raise the consecutive-failures alert."""
    import dagster as dg

    from sync_platform.definitions import build_definitions
    from sync_platform.defs.ops.alerting import apply_alert_work, pending_work

    for _ in range(3):
        assert run_sync(warehouse_url, 100, crashpoint="sync:after_merge").returncode == -9
    with engine.begin() as connection:  # their leases went stale long ago
        connection.execute(sa.delete(sync_leases))
        for run_id, started in connection.execute(
            sa.select(sync_runs.c.id, sync_runs.c.started_at)
        ).all():
            connection.execute(
                sa.update(sync_runs)
                .where(sync_runs.c.id == run_id)
                .values(started_at=started - timedelta(days=1))
            )
        # An n8n gap check runs without a lease: however long it takes, it is not abandoned.
        connection.execute(
            sa.insert(sync_runs).values(
                source="n8n", entity="new_lead", trigger="scheduled", status="running",
                started_at=datetime.now(UTC) - timedelta(hours=2),
            )
        )  # fmt: skip
    repository = build_definitions().get_repository_def()
    with dg.instance_for_test() as instance:
        assert "close 1 abandoned sync(s)" in pending_work(engine, instance, repository)
        apply_alert_work(engine, instance, repository)
    statuses = [status for status, _ in runs(engine)]
    assert statuses == ["failed"] * 3 + ["running"]
    messages = [message for _, message in runs(engine)]
    assert all("stopped without finishing" in message for message in messages[:2])
    assert "no live sync has held it for over 30 minutes" in messages[2]
    with engine.connect() as connection:
        alert = connection.execute(
            sa.text("SELECT severity FROM sync_alerts WHERE dedup_key = :k"),
            {"k": "consecutive_failures:dealer_feed:dealer_leads"},
        ).scalar()
    assert alert == "high"
