"""The n8n executions the delivery-gap check has read and found complete, failed or resent
(`n8n_checked_executions`), so each execution is read from n8n once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from sync_platform.inbox.queries import CHUNK
from sync_platform.warehouse.platform_tables import n8n_checked_executions as checked

CheckedStatus = Literal["complete", "failed", "resent"]


@dataclass(frozen=True)
class Checked:
    execution_id: str
    status: CheckedStatus
    deliveries: int
    stopped_at: datetime | None
    reason: str | None = None


def checked_ids(connection: sa.Connection, workflow_key: str, execution_ids: list[str]) -> set[str]:
    """Which of these executions of a workflow were already read."""
    found: set[str] = set()
    for start in range(0, len(execution_ids), CHUNK):
        found.update(
            connection.execute(
                sa.select(checked.c.execution_id).where(
                    checked.c.workflow_key == workflow_key,
                    checked.c.execution_id.in_(execution_ids[start : start + CHUNK]),
                )
            ).scalars()
        )
    return found


def remember(
    connection: sa.Connection, workflow_key: str, rows: Iterable[Checked], now: datetime
) -> None:
    """Remember these executions as read (one read before, by a check that died before it
    settled its gaps, stays as it was)."""
    rows = list(rows)
    known = checked_ids(connection, workflow_key, [row.execution_id for row in rows])
    rows = [row for row in rows if row.execution_id not in known]
    values = [
        {
            "workflow_key": workflow_key,
            "execution_id": row.execution_id,
            "status": row.status,
            "deliveries": row.deliveries,
            "stopped_at": row.stopped_at,
            "checked_at": now,
            "reason": row.reason,
        }
        for row in rows
    ]
    if values:
        connection.execute(sa.insert(checked), values)


def failed(connection: sa.Connection, workflow_key: str) -> dict[str, tuple[str, str | None]]:
    """The workflow's failed executions still remembered: id → (status, reason)."""
    rows = connection.execute(
        sa.select(checked.c.execution_id, checked.c.status, checked.c.reason)
        .where(checked.c.workflow_key == workflow_key, checked.c.status != "complete")
        .order_by(checked.c.execution_id)
    )
    return {row.execution_id: (row.status, row.reason) for row in rows}


def forget_before(connection: sa.Connection, before: datetime) -> int:
    """Retention: executions read before `before` are older than anything n8n still lists."""
    return connection.execute(sa.delete(checked).where(checked.c.checked_at < before)).rowcount
