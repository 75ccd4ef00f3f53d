"""The alert store: alerts in `sync_alerts`, one open alert per condition (dedup key),
always logged.

Raising an alert whose condition is already open bumps its count instead of creating
another, so a persisting condition tells a person once; it is sent again only after
`alert_renotify_minutes` (unless acknowledged), and a new alert after it was resolved.
Delivery to e-mail/chat is a separate step (`deliver_due`, run by the alerting job, never in
a sensor) that keeps an alert pending for every channel that failed and tries it again
later, waiting longer after each failure, so nothing is lost when a mail server is down and
a dead channel cannot hold anything else up. `delivery_due_at` (indexed) says when an
alert's pending channels are next tried; NULL when nothing is pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
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
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
DELIVERY_BUDGET_SECONDS = 60.0  # one delivery round; the next round takes the rest
MAX_PER_ROUND = 200
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


def renotify_interval(connection: sa.Connection) -> timedelta:
    return timedelta(minutes=ALERT_RENOTIFY_MINUTES.read(connection))


def renotify_due(alert: Any, now: datetime, interval: timedelta) -> bool:
    """An open, unacknowledged alert last sent `interval` or more ago is sent again."""
    if alert is None or _field(alert, "acknowledged_at") is not None:
        return False
    last = _aware(_field(alert, "last_notified_at")) or _aware(_field(alert, "created_at"))
    return now - last >= interval


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def raise_alert(
    connection: sa.Connection,
    *,
    severity: str,
    type: str,
    message: str,
    dedup_key: str,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
    notify: bool = False,
) -> RaisedAlert:
    """Open an alert, or update the open one of the same `dedup_key`; an open alert is
    notified again once its re-notify interval has passed, or now if `notify` says that
    something new joined it."""
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
        if notify or renotify_due(existing, now, renotify_interval(connection)):
            values |= _to_deliver(_channel_names(), now)
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
            last_notified_at=now,
            **_to_deliver(_channel_names(), now),
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


def _to_deliver(channels: list[str], now: datetime) -> dict[str, Any]:
    """The delivery columns of an alert that should go out to `channels` now."""
    return {
        "pending_channels": channels,
        "delivery_due_at": now if channels else None,
        "delivery_attempts": 0,
    }


def retry_wait(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed delivery an alert is tried again: 1, 2, 4 …
    minutes, at most an hour."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def deliveries_due(connection: sa.Connection, now: datetime) -> int:
    """How many alerts have channels to try now (indexed; read only)."""
    return connection.execute(
        sa.select(sa.func.count()).where(sync_alerts.c.delivery_due_at <= now)
    ).scalar_one()


def deliver_due(
    engine: sa.Engine,
    channels: Sequence,
    *,
    now: datetime | None = None,
    budget_seconds: float = DELIVERY_BUDGET_SECONDS,
) -> dict[str, int]:
    """Send every alert whose pending channels are due; a failed channel stays pending and is
    due again after `retry_wait`. Stops starting new alerts once `budget_seconds` are spent
    (each channel has its own timeout), leaving the rest due for the next round.

    Returns counts: {"sent": n, "failed": m, "left": k}.
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()
    by_name = {channel.name: channel for channel in channels}
    with engine.connect() as connection:
        waiting = [
            dict(row)
            for row in connection.execute(
                sa.select(sync_alerts)
                .where(sync_alerts.c.delivery_due_at <= now)
                .order_by(sync_alerts.c.delivery_due_at, sync_alerts.c.id)
                .limit(MAX_PER_ROUND)
            ).mappings()
        ]
    counts = {"sent": 0, "failed": 0, "left": 0}
    for position, alert in enumerate(waiting):
        if time.monotonic() - started > budget_seconds:
            counts["left"] = len(waiting) - position
            break
        delivered = list(alert["delivered_channels"] or [])
        pending, errors = [], {}
        for name in alert["pending_channels"] or []:
            channel = by_name.get(name)
            if channel is None:  # channel no longer configured: nothing to retry with
                continue
            try:
                channel.send(alert)
            except Exception as exc:  # any failure: keep it pending, say why
                pending.append(name)
                errors[name] = f"{exc.__class__.__name__}: {exc}"[:500]
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
        attempts = alert["delivery_attempts"] + 1 if pending else 0
        with engine.begin() as connection:
            connection.execute(
                sa.update(sync_alerts)
                .where(sync_alerts.c.id == alert["id"])
                .values(
                    pending_channels=pending,
                    delivered_channels=sorted(set(delivered)),
                    details=details or None,
                    delivery_attempts=attempts,
                    delivery_due_at=now + retry_wait(attempts) if pending else None,
                )
            )
    return counts
