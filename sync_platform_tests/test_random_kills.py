"""kill -9 at random points of a sync, round after round, on both dialects: after each kill
the warehouse holds the previous version of the data or the new one, never a mix; the next
sync closes the dead one as abandoned and converges to the source exactly.

`make test` runs a few rounds; `make chaos` runs many (SYNC_PLATFORM_CHAOS_ROUNDS) and prints
where the kills landed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import sync_runs
from sync_platform_tests.records import lead

ROUNDS = int(os.environ.get("SYNC_PLATFORM_CHAOS_ROUNDS", "3"))
SEED = int(os.environ.get("SYNC_PLATFORM_CHAOS_SEED", "19"))
LEADS_COUNT = 20_000
SYNC = textwrap.dedent(
    """
    import json, sys
    from sync_platform.engine.pipeline import run_entity_sync
    from sync_platform.engine.ports import EntitySource, SyncRequest
    from sync_platform.warehouse.connection import create_warehouse_engine
    from sync_platform_tests.records import LEADS

    url, path = sys.argv[1], sys.argv[2]
    records = json.load(open(path))
    pages = lambda since: [records[i:i + 2000] for i in range(0, len(records), 2000)]
    report = run_entity_sync(
        create_warehouse_engine(url), SyncRequest("dealer_feed", LEADS), EntitySource(pages=pages)
    )
    print(report.status)
    """
)


def _sync(
    url: str, records: list[dict], path, engine: sa.Engine | None = None, kill_after: float = 0
) -> str:
    """Run one sync in its own process. With `engine`, SIGKILL it `kill_after` seconds after
    its sync run started (not during its imports), if it is still running. Returns
    'finished' or 'killed'."""
    path.write_text(json.dumps(records))
    process = subprocess.Popen(
        [sys.executable, "-c", SYNC, url, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if engine is not None:
        with engine.connect() as connection:
            before = connection.execute(sa.text("SELECT count(*) FROM sync_runs")).scalar()
        while process.poll() is None:
            with engine.connect() as connection:
                now = connection.execute(sa.text("SELECT count(*) FROM sync_runs")).scalar()
            if now > before:
                break
            time.sleep(0.01)
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            return "killed"
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return "finished"


def _last_duration(engine: sa.Engine) -> float:
    with engine.connect() as connection:
        started, finished = connection.execute(
            sa.select(sync_runs.c.started_at, sync_runs.c.finished_at)
            .where(sync_runs.c.status == "succeeded")
            .order_by(sync_runs.c.id.desc())
            .limit(1)
        ).one()
    return (finished - started).total_seconds()


def _warehouse(engine: sa.Engine) -> dict[int, tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT lead_id, status, customer_name FROM dealer_leads")
        ).all()
    return {int(lead_id): (status, name) for lead_id, status, name in rows}


def _expected(records: list[dict]) -> dict[int, tuple[str, str]]:
    return {r["LeadId"]: (r["Status"], r["CustomerName"]) for r in records}


def _next_version(records: list[dict], rng: random.Random, minute: int) -> list[dict]:
    """5% of the leads change, 1% are new; all stamped a minute later than anything before."""
    stamp = f"2026-11-02T{minute // 60:02d}:{minute % 60:02d}:00Z"
    changed = {i: r | {"Status": rng.choice(["contacted", "won", "lost"]), "UpdatedAt": stamp}
               for i, r in enumerate(records) if rng.random() < 0.05}  # fmt: skip
    updated = [changed.get(i, record) for i, record in enumerate(records)]
    start = len(records)
    return updated + [lead(start + i, updated=stamp) for i in range(len(records) // 100)]


def test_kill_9_at_random_points_never_leaves_a_mix(engine, warehouse_url, tmp_path):
    rng = random.Random(SEED)
    path = tmp_path / "records.json"
    version = [lead(i) for i in range(LEADS_COUNT)]
    _sync(warehouse_url, version, path)
    outcomes: Counter[str] = Counter()
    for round_number in range(ROUNDS):
        new = _next_version(version, rng, minute=round_number + 1)
        # Somewhere in the sync's own work: between its start and how long the last one took.
        kill_after = rng.uniform(0, _last_duration(engine) * 1.1)
        outcome = _sync(warehouse_url, new, path, engine, kill_after=kill_after)
        held = _warehouse(engine)
        if held == _expected(version):
            outcomes[f"{outcome}: before"] += 1
        elif held == _expected(new):
            outcomes[f"{outcome}: after"] += 1
        else:
            raise AssertionError(f"round {round_number}: a mix of two versions after {outcome}")
        _sync(warehouse_url, new, path)  # the next sync: converges, closes the dead one
        assert _warehouse(engine) == _expected(new)
        version = new
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT status, message FROM sync_runs")).all()
    statuses = Counter(status for status, _ in runs)
    assert statuses["running"] == 0  # every killed sync closed by the one after it
    # Every killed sync is closed: as abandoned, or succeeded when the kill came after it
    # had finished its work (the process was exiting).
    assert all(message.startswith("abandoned: ") for status, message in runs if status == "failed")
    print(f"\n{ROUNDS} rounds on {engine.dialect.name}: {dict(outcomes)}; syncs {dict(statuses)}")
