"""Alerts: stored in `sync_alerts`, one open alert per condition (dedup key), always logged.

Raising an alert that is already open bumps its count instead of creating another, so a
condition that persists tells a person once. Delivery beyond the log (e-mail, chat) reads
`pending_channels` and retries what failed; see engine/alert_delivery.py when configured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import sync_alerts

log = logging.getLogger("sync_platform.alerts")
LOG_LEVELS = {
    "high": logging.ERROR,
    "medium": logging.WARNING,
    "warning": logging.WARNING,
    "low": logging.INFO,
}


@dataclass(frozen=True)
class RaisedAlert:
    id: int
    new: bool  # False when the same condition was already open


def raise_alert(
    connection: sa.Connection,
    *,
    severity: str,
    type: str,
    message: str,
    dedup_key: str,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> RaisedAlert:
    now = now or datetime.now(UTC)
    existing = connection.execute(
        sa.select(sync_alerts.c.id).where(
            sync_alerts.c.dedup_key == dedup_key, sync_alerts.c.status == "open"
        )
    ).scalar()
    if existing is not None:
        connection.execute(
            sa.update(sync_alerts)
            .where(sync_alerts.c.id == existing)
            .values(
                last_seen_at=now,
                occurrences=sync_alerts.c.occurrences + 1,
                message=message,
                details=details,
            )
        )
        return RaisedAlert(existing, new=False)
    alert_id = connection.execute(
        sa.insert(sync_alerts)
        .values(
            created_at=now,
            last_seen_at=now,
            severity=severity,
            type=type,
            message=message,
            details=details,
            dedup_key=dedup_key,
            status="open",
            delivered_channels=["log"],
            pending_channels=[],
            last_notified_at=now,
        )
        .returning(sync_alerts.c.id)
    ).scalar_one()
    log.log(LOG_LEVELS[severity], "ALERT #%s [%s] %s: %s", alert_id, severity, type, message)
    return RaisedAlert(alert_id, new=True)


def resolve_alerts(connection: sa.Connection, dedup_key: str, now: datetime | None = None) -> int:
    """Close the open alert for a condition that no longer holds; returns how many closed."""
    result = connection.execute(
        sa.update(sync_alerts)
        .where(sync_alerts.c.dedup_key == dedup_key, sync_alerts.c.status == "open")
        .values(status="resolved", resolved_at=now or datetime.now(UTC))
    )
    return result.rowcount
