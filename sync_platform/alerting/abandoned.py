"""Syncs that died while running (kill -9, an OOM kill, a lost node, the database gone from
under them) leave their `sync_runs` row `running`. Such a row is closed as `failed`, saying
why and whether its merge had committed, so the run history, the health report and the alert
rules (which count failed syncs) tell the truth: by the sync that takes over the entity's
lease, and by the periodic alert run for rows no live sync holds.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sync_platform.runtime_config import positive_int, setting
from sync_platform.warehouse.platform_tables import sync_leases, sync_runs, sync_state

log = logging.getLogger(__name__)
LEASE_STALE_MINUTES = setting(
    "lease_stale_minutes",
    30,
    positive_int,
    "minutes without a heartbeat after which a sync's lease is taken over, and a sync still "
    "'running' without a live lease is closed as abandoned",
)


def close_abandoned(
    connection: sa.Connection, sync_run_id: int, *, why: str, now: datetime
) -> bool:
    """Close one sync that is still `running` as failed, saying `why` and whether its merge
    had committed (its data is then in, unverified); False when it was not running."""
    run = connection.execute(
        sa.select(sync_runs.c.source, sync_runs.c.entity).where(
            sync_runs.c.id == sync_run_id, sync_runs.c.status == "running"
        )
    ).first()
    if run is None:
        return False
    committed = connection.execute(
        sa.select(sync_state.c.sync_run_id).where(
            sync_state.c.source == run.source,
            sync_state.c.entity == run.entity,
            sync_state.c.sync_run_id == sync_run_id,
        )
    ).first()
    outcome = (
        "its merge had committed: the data it read is in, not verified"
        if committed
        else "it changed nothing (its merge never committed)"
    )
    connection.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.id == sync_run_id, sync_runs.c.status == "running")
        .values(status="failed", finished_at=now, message=f"abandoned: {why}; {outcome}")
    )
    log.warning("sync #%s of %s.%s abandoned: %s", sync_run_id, run.source, run.entity, why)
    return True


def abandoned_runs(
    connection: sa.Connection, now: datetime, entities: Collection[tuple[str, str]]
) -> list[int]:
    """Entity syncs (of these (source, entity) pairs: the ones that hold a lease while they
    run) `running` for longer than lease_stale_minutes that no fresh lease holds."""
    stale_after = timedelta(minutes=LEASE_STALE_MINUTES.read(connection))
    live = sa.select(sync_leases.c.sync_run_id).where(
        sync_leases.c.sync_run_id.is_not(None), sync_leases.c.heartbeat_at > now - stale_after
    )
    rows = connection.execute(
        sa.select(sync_runs.c.id, sync_runs.c.source, sync_runs.c.entity)
        .where(
            sync_runs.c.status == "running",
            sync_runs.c.started_at < now - stale_after,
            sync_runs.c.id.not_in(live),
        )
        .order_by(sync_runs.c.id)
    )
    return [row.id for row in rows if (row.source, row.entity) in entities]


def close_abandoned_runs(
    connection: sa.Connection, entities: Collection[tuple[str, str]], now: datetime | None = None
) -> int:
    now = now or datetime.now(UTC)
    minutes = LEASE_STALE_MINUTES.read(connection)
    why = f"no live sync has held it for over {minutes} minutes (lease_stale_minutes)"
    dead = abandoned_runs(connection, now, entities)
    return sum(close_abandoned(connection, i, why=why, now=now) for i in dead)
