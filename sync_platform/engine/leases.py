"""One sync of an entity at a time, whoever starts it (a Dagster run, the CLI, a test).

Dagster's pools keep its own runs of an entity from overlapping; the lease also covers
syncs started outside Dagster. A lease is a row in `sync_leases`, refreshed while the sync
runs; a holder that died stops refreshing, and its lease is taken over once stale — at once
when the holder was a process on this host that no longer exists. A refused sync is told
who holds the lease and how far it has got.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sync_platform.alerting.abandoned import close_abandoned
from sync_platform.errors import SyncAlreadyRunningError
from sync_platform.warehouse.platform_tables import sync_leases, sync_runs

HEARTBEAT_EVERY = timedelta(seconds=15)


def holder_name(dagster_run_id: str | None) -> str:
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    return f"dagster run {dagster_run_id} ({where})" if dagster_run_id else where


def _holder_is_gone(lease: sa.Row) -> bool:
    """The holder ran on this host and its process no longer exists."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _running_status(connection: sa.Connection, lease: sa.Row) -> str:
    run = connection.execute(
        sa.select(sync_runs.c.trigger, sync_runs.c.started_at, sync_runs.c.fetched).where(
            sync_runs.c.id == lease.sync_run_id
        )
    ).first()
    progress = (
        f"{run.trigger} sync #{lease.sync_run_id} started {run.started_at:%Y-%m-%d %H:%M:%S} "
        f"UTC, {run.fetched} records fetched so far"
        if run
        else "starting"
    )
    return f"held by {lease.holder} ({progress})"


def acquire_lease(
    engine: sa.Engine, source: str, entity: str, holder: str, stale_after: timedelta
) -> None:
    """Take the entity's lease or raise SyncAlreadyRunningError saying who has it."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"sync_platform:lease:{source}.{entity}"},
            )
        lease = connection.execute(
            sa.select(sync_leases).where(
                sync_leases.c.source == source, sync_leases.c.entity == entity
            )
        ).first()
        fresh = lease is not None and lease.heartbeat_at.replace(tzinfo=UTC) > now - stale_after
        if fresh and not _holder_is_gone(lease):
            raise SyncAlreadyRunningError(
                f"{source}.{entity} is already syncing: {_running_status(connection, lease)}",
                hint="wait for it to finish (or for its lease to go stale if it died); "
                "re-running afterwards is safe",
            )
        if lease is not None and lease.sync_run_id is not None:
            gone = (
                "its process is gone"
                if _holder_is_gone(lease)
                else f"no heartbeat since {lease.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
            )
            close_abandoned(
                connection,
                lease.sync_run_id,
                why=f"{lease.holder} stopped without finishing ({gone}); {holder} took over",
                now=now,
            )
        values = {
            "holder": holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "sync_run_id": None,
            "acquired_at": now,
            "heartbeat_at": now,
        }
        if lease is None:
            connection.execute(
                sa.insert(sync_leases).values(source=source, entity=entity, **values)
            )
        else:
            connection.execute(
                sa.update(sync_leases)
                .where(sync_leases.c.source == source, sync_leases.c.entity == entity)
                .values(values)
            )


class Lease:
    """A held lease: `attach` the audit row, `beat` while working, `release` at the end."""

    def __init__(self, engine: sa.Engine, source: str, entity: str, holder: str):
        self.engine, self.source, self.entity, self.holder = engine, source, entity, holder
        self._last_beat = datetime.now(UTC)

    def _where(self):
        return (
            (sync_leases.c.source == self.source)
            & (sync_leases.c.entity == self.entity)
            & (sync_leases.c.holder == self.holder)
        )

    def attach(self, sync_run_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(sync_leases).where(self._where()).values(sync_run_id=sync_run_id)
            )

    def beat(self, sync_run_id: int, fetched: int) -> None:
        """Refresh the lease and publish progress, at most every HEARTBEAT_EVERY."""
        now = datetime.now(UTC)
        if now - self._last_beat < HEARTBEAT_EVERY:
            return
        self._last_beat = now
        with self.engine.begin() as connection:
            connection.execute(sa.update(sync_leases).where(self._where()).values(heartbeat_at=now))
            connection.execute(
                sa.update(sync_runs).where(sync_runs.c.id == sync_run_id).values(fetched=fetched)
            )

    def release(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.delete(sync_leases).where(self._where()))
