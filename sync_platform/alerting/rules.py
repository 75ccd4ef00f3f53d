"""The alert rules over the warehouse's audit tables. Each returns conditions that either
hold (raise, deduplicated) or not (resolve), so an alert closes itself when things recover.

Evaluating is read only (`evaluate`, `changes`: what applying would change, so a sensor can
decide whether there is anything to do); `apply` writes, in the alerting run. A source that
is not configured raises nothing (its conditions never hold), and one configured recently is
given its freshness window from the moment it was configured before it counts as stale.

Thresholds are runtime settings, read at every evaluation: `sync-platform config set
alert_consecutive_failures 5` applies at the next evaluation, no restart.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sync_platform.alerting.store import (
    raise_alert,
    renotify_due,
    renotify_interval,
    resolve_alerts,
)
from sync_platform.config.models import SourceConfig
from sync_platform.inbox.queries import first_received_at
from sync_platform.runtime_config import factor, non_negative_int, positive_int, setting
from sync_platform.warehouse.platform_tables import backups, sync_alerts, sync_gaps, sync_runs

HISTORY = 15  # the latest sync plus its trailing 14
MIN_HISTORY_FOR_TRENDS = 5
OK_STATUSES = ("succeeded", "warning")

CONSECUTIVE_FAILURES = setting(
    "alert_consecutive_failures",
    3,
    positive_int,
    "failed syncs (or runs of a job) in a row that raise a high alert",
)
OPEN_GAPS = setting(
    "alert_open_gaps", 10, positive_int, "open gaps of one entity that raise a high alert"
)
SLOW_FACTOR = setting(
    "alert_slow_factor",
    1.5,
    factor,
    "a sync slower than this many times its trailing median raises a warning",
)
SLOW_MIN_SECONDS = setting(
    "alert_slow_min_seconds",
    60,
    non_negative_int,
    "a sync shorter than this many seconds is never slow (a 2 s sync that took 5 s is noise)",
)
BACKUP_MAX_AGE_HOURS = setting(
    "backup_max_age_hours",
    26,
    positive_int,
    "no verified full backup for this many hours raises backup_missing",
)
BACKUP_INBOX_MAX_AGE_MINUTES = setting(
    "backup_inbox_max_age_minutes",
    150,
    positive_int,
    "no webhook-inbox backup for this many minutes raises backup_missing",
)


@dataclass(frozen=True)
class Condition:
    dedup_key: str
    holds: bool
    severity: str = "high"
    type: str = ""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # the source it concerns, if any


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def recent_runs(connection: sa.Connection, source: str, entity: str) -> list[sa.Row]:
    return connection.execute(
        sa.select(sync_runs)
        .where(
            sync_runs.c.source == source,
            sync_runs.c.entity == entity,
            sync_runs.c.status != "running",
        )
        .order_by(sync_runs.c.id.desc())
        .limit(HISTORY)
    ).all()


def duration(run: sa.Row) -> float | None:
    if run.finished_at is None:
        return None
    return (_aware(run.finished_at) - _aware(run.started_at)).total_seconds()


def consecutive_failures(source: str, entity: str, runs: list[sa.Row], limit: int) -> Condition:
    failed = runs[:limit]
    holds = len(failed) == limit and all(run.status == "failed" for run in failed)
    last = failed[0].message if failed else ""
    return Condition(
        f"consecutive_failures:{source}:{entity}",
        holds,
        "high",
        "consecutive_failures",
        f"{source}.{entity}: the last {limit} syncs failed (latest: {last}). Check the "
        "sync's errors in sync_errors and the source; runbook: docs/operations.md",
        {"runs": [run.id for run in failed]},
    )


def stale(
    source: str,
    entity: str,
    runs: list[sa.Row],
    minutes: int,
    now: datetime,
    configured_since: datetime | None = None,
) -> Condition:
    """No successful sync within `minutes`. An entity that never synced is measured from when
    its source was configured (a grace of one freshness window), when that is known."""
    ok = [run for run in runs if run.status in OK_STATUSES and run.finished_at]
    last = _aware(ok[0].finished_at) if ok else None
    reference = last or _aware(configured_since)
    holds = reference is None or now - reference > timedelta(minutes=minutes)
    when = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
    return Condition(
        f"stale_sync:{source}:{entity}",
        holds,
        "high",
        "stale_sync",
        f"{source}.{entity}: no successful sync {when} (expected within {minutes} min). Is "
        "its schedule running, and is its latest run failing?",
        {"last_success": last.isoformat() if last else None, "window_minutes": minutes},
    )


def slow(
    source: str, entity: str, runs: list[sa.Row], factor: float, min_seconds: int = 0
) -> Condition:
    times = [d for run in runs if run.status in OK_STATUSES and (d := duration(run)) is not None]
    key = f"slow_sync:{source}:{entity}"
    if len(times) < MIN_HISTORY_FOR_TRENDS + 1:
        return Condition(key, False)
    latest, median = times[0], statistics.median(times[1:])
    holds = median > 0 and latest > factor * median and latest >= min_seconds
    return Condition(
        key,
        holds,
        "warning",
        "slow_sync",
        f"{source}.{entity}: the latest sync took {latest:.1f}s, {latest / median:.1f}x its "
        f"trailing median of {median:.1f}s. Look at its per-phase seconds (fetch = the source "
        "is slow; merge/verify = the warehouse).",
        {"latest_seconds": latest, "median_seconds": median},
    )


def open_gap_counts(connection: sa.Connection) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        sa.select(sync_gaps.c.source, sync_gaps.c.entity, sa.func.count())
        .where(sync_gaps.c.status == "open")
        .group_by(sync_gaps.c.source, sync_gaps.c.entity)
    ).all()
    return {(source, entity): count for source, entity, count in rows}


def too_many_gaps(source: str, entity: str, count: int, limit: int) -> Condition:
    return Condition(
        f"open_gaps:{source}:{entity}",
        count >= limit,
        "high",
        "open_gaps",
        f"{source}.{entity}: {count} records the source has are missing from the warehouse "
        "(sync_gaps). sync_gap_sensor is resyncing them; this many at once usually means the "
        "source filtered or paged them away: check it.",
        {"open_gaps": count},
    )


def _latest_backup(connection: sa.Connection, kind: str, statuses: tuple[str, ...]):
    return _aware(
        connection.execute(
            sa.select(sa.func.max(backups.c.created_at)).where(
                backups.c.kind == kind, backups.c.status.in_(statuses)
            )
        ).scalar()
    )


def backup_missing(connection: sa.Connection, now: datetime) -> list[Condition]:
    """No verified full backup within `backup_max_age_hours` (the nightly schedule missed,
    failed or did not verify); no inbox backup within `backup_inbox_max_age_minutes` while
    the inbox holds deliveries. A warehouse younger than the window is not alerted yet."""
    conditions = []
    full_window = timedelta(hours=BACKUP_MAX_AGE_HOURS.read(connection))
    first_use = _aware(connection.execute(sa.select(sa.func.min(sync_runs.c.started_at))).scalar())
    latest = _latest_backup(connection, "full", ("verified",))
    in_use = first_use is not None and now - first_use > full_window
    when = f"since {latest:%Y-%m-%d %H:%M} UTC" if latest else "ever"
    conditions.append(
        Condition(
            "backup_missing:full",
            in_use and (latest is None or now - latest > full_window),
            "high",
            "backup_missing",
            f"no verified full backup of the warehouse {when} (objective: every "
            f"{full_window.total_seconds() / 3600:g} h). Is backup_warehouse_nightly running, "
            "and did its last run fail? See docs/backup_and_recovery.md",
            {"latest_verified": latest.isoformat() if latest else None},
        )
    )
    inbox_window = timedelta(minutes=BACKUP_INBOX_MAX_AGE_MINUTES.read(connection))
    first_delivery = _aware(first_received_at(connection))
    latest_inbox = _latest_backup(connection, "inbox", ("created", "verified"))
    waiting = first_delivery is not None and now - first_delivery > inbox_window
    conditions.append(
        Condition(
            "backup_missing:inbox",
            waiting and (latest_inbox is None or now - latest_inbox > inbox_window),
            "high",
            "backup_missing",
            "no backup of the webhook inbox (push-only data n8n cannot re-send) within "
            f"{inbox_window.total_seconds() / 60:g} min. Is backup_webhook_inbox_hourly "
            "running? See docs/backup_and_recovery.md",
            {"latest": latest_inbox.isoformat() if latest_inbox else None},
        )
    )
    return conditions


def evaluate(
    connection: sa.Connection,
    sources: list[SourceConfig],
    now: datetime,
    *,
    unconfigured: Collection[str] = (),
    configured_since: Mapping[str, datetime] | None = None,
) -> list[Condition]:
    """Every rule over every entity, with the thresholds in force right now. Conditions of
    `unconfigured` sources never hold (their open alerts resolve); `configured_since` gives
    never-synced entities their grace."""
    failures = CONSECUTIVE_FAILURES.read(connection)
    factor = SLOW_FACTOR.read(connection)
    slow_min = SLOW_MIN_SECONDS.read(connection)
    gap_limit = OPEN_GAPS.read(connection)
    gaps = open_gap_counts(connection)
    since = configured_since or {}
    conditions = []
    for source in sources:
        name = source.source
        for entity in source.entities.values():
            runs = recent_runs(connection, name, entity.name)
            found = [
                consecutive_failures(name, entity.name, runs, failures),
                slow(name, entity.name, runs, factor, slow_min),
                too_many_gaps(name, entity.name, gaps.get((name, entity.name), 0), gap_limit),
            ]
            if entity.freshness_minutes:
                found.append(
                    stale(name, entity.name, runs, entity.freshness_minutes, now, since.get(name))
                )
            conditions += [
                replace(c, source=name, holds=c.holds and name not in unconfigured) for c in found
            ]
    conditions.extend(backup_missing(connection, now))
    return conditions


def changes(connection: sa.Connection, conditions: list[Condition], now: datetime) -> list[str]:
    """What `apply` would change (read only): alerts to raise, to send again, to resolve."""
    open_alerts = {
        row.dedup_key: row
        for row in connection.execute(
            sa.select(
                sync_alerts.c.dedup_key,
                sync_alerts.c.created_at,
                sync_alerts.c.last_notified_at,
                sync_alerts.c.acknowledged_at,
            ).where(sync_alerts.c.status == "open")
        )
    }
    interval = renotify_interval(connection)
    found = []
    for condition in conditions:
        alert = open_alerts.get(condition.dedup_key)
        if condition.holds and alert is None:
            found.append(f"raise {condition.dedup_key}")
        elif condition.holds and renotify_due(alert, now, interval):
            found.append(f"renotify {condition.dedup_key}")
        elif not condition.holds and alert is not None:
            found.append(f"resolve {condition.dedup_key}")
    return found


def apply(connection: sa.Connection, conditions: list[Condition], now: datetime) -> dict[str, int]:
    """Raise what holds, resolve what does not; returns {"raised": n, "resolved": m}."""
    counts = {"raised": 0, "resolved": 0}
    for condition in conditions:
        if condition.holds:
            raise_alert(
                connection,
                severity=condition.severity,
                type=condition.type,
                message=condition.message,
                dedup_key=condition.dedup_key,
                details=condition.details,
                now=now,
            )
            counts["raised"] += 1
        else:
            counts["resolved"] += resolve_alerts(connection, condition.dedup_key, now)
    return counts
