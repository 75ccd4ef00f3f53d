"""Incremental-sync cursors, written in the same transaction as the data they describe."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import sync_state


def read_cursor(connection: sa.Connection, source: str, entity: str) -> str | None:
    return connection.execute(
        sa.select(sync_state.c.cursor).where(
            sync_state.c.source == source, sync_state.c.entity == entity
        )
    ).scalar()


def save_cursor(
    connection: sa.Connection,
    source: str,
    entity: str,
    cursor: str | None,
    *,
    sync_run_id: int,
    now: datetime,
) -> None:
    values = {"cursor": cursor, "updated_at": now, "sync_run_id": sync_run_id}
    updated = connection.execute(
        sa.update(sync_state)
        .where(sync_state.c.source == source, sync_state.c.entity == entity)
        .values(values)
    )
    if updated.rowcount == 0:
        connection.execute(sa.insert(sync_state).values(source=source, entity=entity, **values))
