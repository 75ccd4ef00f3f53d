"""The alert store: alerts in `sync_alerts`, one open alert per condition (dedup key),
always logged.

Raising an alert whose condition is already open bumps its count instead of creating
another, so a persisting condition tells a person once; it is sent again only after
`alert_renotify_minutes` (unless acknowledged), and a new alert after it was resolved.
Delivery to e-mail/chat is a separate step (`deliver_pending`) that keeps an alert pending
for every channel that failed, so nothing is lost when a mail server is down.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sync_platform.alerting.channels import configured_channel_names
from sync_platform.runtime_config import positive_int, setting
from sync_platform.warehouse.platform_tables import sync_alerts

log = logging.getLogger("sync_platform.alerts")
LOG_LEVELS = {
    "high": logging.ERROR,
    "medium": logging.WARNING,
    "warning": logging.WARNING,
    "low": logging.INFO,
}
ALERT_RENOTIFY_MINUTES = setting(
    "alert_renotify_minutes",
    240,
    positive_int,
    "minutes before an unacknowledged open alert is sent again (≥ 1)",
)


@dataclass(frozen=True)
class RaisedAlert:
    id: int
    new: bool  # False when the same condition was already open


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _channel_names() -> list[str]:
    return configured_channel_names()


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
    existing = (
        connection.execute(
            sa.select(sync_alerts).where(
                sync_alerts.c.dedup_key == dedup_key, sync_alerts.c.status == "open"
            )
        )
        .mappings()
        .first()
    )
    if existing is not None:
        values: dict[str, Any] = {
            "last_seen_at": now,
            "occurrences": sync_alerts.c.occurrences + 1,
            "message": message,
            "details": details,
        }
        renotify = timedelta(minutes=ALERT_RENOTIFY_MINUTES.read(connection))
        last = _aware(existing["last_notified_at"]) or _aware(existing["created_at"])
        if existing["acknowledged_at"] is None and now - last >= renotify:
            values["pending_channels"] = _channel_names()
            values["last_notified_at"] = now
            log.log(
                LOG_LEVELS[severity],
                "ALERT #%s again [%s] %s: %s",
                existing["id"],
                severity,
                type,
                message,
            )
        connection.execute(
            sa.update(sync_alerts).where(sync_alerts.c.id == existing["id"]).values(values)
        )
        return RaisedAlert(existing["id"], new=False)
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
            pending_channels=_channel_names(),
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
    if result.rowcount:
        log.info("alert %s resolved: the condition no longer holds", dedup_key)
    return result.rowcount


def acknowledge(connection: sa.Connection, alert_id: int, by: str) -> bool:
    """Someone is on it: no more re-notifications for this alert."""
    result = connection.execute(
        sa.update(sync_alerts)
        .where(sync_alerts.c.id == alert_id, sync_alerts.c.acknowledged_at.is_(None))
        .values(acknowledged_at=datetime.now(UTC), acknowledged_by=by)
    )
    return bool(result.rowcount)


def deliver_pending(engine: sa.Engine, channels: Sequence) -> dict[str, int]:
    """Send every alert still pending for a channel; failures stay pending for next time.

    Returns counts: {"sent": n, "failed": m}.
    """
    by_name = {channel.name: channel for channel in channels}
    with engine.connect() as connection:
        waiting = [
            dict(row)
            for row in connection.execute(
                sa.select(sync_alerts).order_by(sync_alerts.c.id)
            ).mappings()
            if row["pending_channels"]
        ]
    counts = {"sent": 0, "failed": 0}
    for alert in waiting:
        delivered = list(alert["delivered_channels"] or [])
        pending, errors = [], {}
        for name in alert["pending_channels"]:
            channel = by_name.get(name)
            if channel is None:  # channel no longer configured: nothing to retry with
                continue
            try:
                channel.send(alert)
            except Exception as exc:  # any failure: keep it pending, say why
                pending.append(name)
                errors[name] = f"{exc.__class__.__name__}: {exc}"
                counts["failed"] += 1
                log.warning("alert #%s not delivered to %s: %s", alert["id"], name, exc)
            else:
                delivered.append(name)
                counts["sent"] += 1
        details = dict(alert["details"] or {})
        if errors:
            details["delivery_errors"] = errors
        else:
            details.pop("delivery_errors", None)
        with engine.begin() as connection:
            connection.execute(
                sa.update(sync_alerts)
                .where(sync_alerts.c.id == alert["id"])
                .values(
                    pending_channels=pending,
                    delivered_channels=sorted(set(delivered)),
                    details=details or None,
                )
            )
    return counts
