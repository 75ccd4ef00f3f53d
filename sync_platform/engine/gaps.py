"""Gaps: keys the source has and the warehouse lacks, from detection to resolution.

Verification opens a gap per missing key and closes it when the key is present again
(recording the run that fixed it). A targeted resync counts an attempt on the gaps it
covers before it starts; a gap still missing after the last allowed attempt becomes
`unrecoverable` and raises one high-severity alert naming the keys. A key declared
unrecoverable is not reopened by the next verification that still misses it (that would
start the resyncs and the alert over, every sync); it is resolved like an open gap when the
key is present again, and the alert resolves once the entity has no unrecoverable gap left.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from sync_platform.alerting.store import raise_alert, resolve_alerts
from sync_platform.runtime_config import non_negative_int, positive_int, setting
from sync_platform.warehouse import bulk
from sync_platform.warehouse.platform_tables import sync_gaps

MAX_KEYS_IN_ALERT = 50

GAP_RESYNC_MAX_ATTEMPTS = setting(
    "gap_resync_max_attempts",
    3,
    positive_int,
    "targeted resync attempts for a gap before it is declared unrecoverable",
)
GAP_RESYNC_BACKOFF_MINUTES = setting(
    "gap_resync_backoff_minutes",
    5,
    non_negative_int,
    "minutes between a gap's first resync (immediate) and its second; the wait doubles "
    "before each further attempt (5: 5, 10, 20 … minutes after the previous attempt started)",
)


def _open(source: str, entity: str):
    return (
        (sync_gaps.c.source == source)
        & (sync_gaps.c.entity == entity)
        & (sync_gaps.c.status == "open")
    )


def open_gaps(connection: sa.Connection, source: str, entity: str) -> dict[str, int]:
    """Open gap id by record key."""
    return dict(
        connection.execute(
            sa.select(sync_gaps.c.record_key, sync_gaps.c.id).where(_open(source, entity))
        ).all()
    )


def tracked_keys(connection: sa.Connection, source: str, entity: str) -> dict[str, int]:
    """Gap id by record key, for the entity's open and unrecoverable gaps."""
    return dict(
        connection.execute(
            sa.select(sync_gaps.c.record_key, sync_gaps.c.id).where(
                sync_gaps.c.source == source,
                sync_gaps.c.entity == entity,
                sync_gaps.c.status.in_(("open", "unrecoverable")),
            )
        ).all()
    )


def record_gaps(
    connection: sa.Connection,
    *,
    source: str,
    entity: str,
    missing: list[str],
    settled: list[str],
    sync_run_id: int,
    now: datetime,
) -> tuple[int, int]:
    """Open gaps for newly missing keys (not for keys already open or unrecoverable), resolve
    the open or unrecoverable gaps of the `settled` keys (present again, or no longer listed by
    the source); returns (opened, closed)."""
    known = tracked_keys(connection, source, entity)
    new = [key for key in missing if key not in known]
    if new:
        connection.execute(
            sa.insert(sync_gaps),
            [
                {
                    "source": source,
                    "entity": entity,
                    "record_key": key,
                    "status": "open",
                    "detected_at": now,
                    "detected_by_run_id": sync_run_id,
                }
                for key in new
            ],
        )
    fixed = [known[key] for key in settled if key in known]
    if fixed:
        connection.execute(
            sa.update(sync_gaps)
            .where(sync_gaps.c.id.in_(fixed))
            .values(status="resolved", resolved_at=now, resolved_by_run_id=sync_run_id)
        )
    return len(new), len(fixed)


def record_attempt(
    engine: sa.Engine, *, source: str, entity: str, keys: list[str], now: datetime
) -> None:
    """Count a resync attempt on these keys' open gaps (before the attempt, so a resync
    that dies still counts)."""
    with engine.begin() as connection:
        count_attempt(connection, source=source, entity=entity, keys=keys, now=now)


def count_attempt(
    connection: sa.Connection, *, source: str, entity: str, keys: list[str], now: datetime
) -> None:
    """record_attempt in the caller's transaction (an attempt made before its gap opened)."""
    if keys:
        connection.execute(
            sa.update(sync_gaps)
            .where(_open(source, entity), sync_gaps.c.record_key.in_(keys))
            .values(attempts=sync_gaps.c.attempts + 1, last_attempt_at=now)
        )


def mark_unrecoverable(connection: sa.Connection, *, source: str, entity: str, keys: list[str]):
    """Close these open gaps as unrecoverable (no further attempts)."""
    if keys:
        connection.execute(
            sa.update(sync_gaps)
            .where(_open(source, entity), sync_gaps.c.record_key.in_(keys))
            .values(status="unrecoverable")
        )


def take_exhausted(
    connection: sa.Connection, *, source: str, entity: str, missing: list[str], max_attempts: int
) -> list[str]:
    """Missing keys whose attempts are used up, now marked unrecoverable (sorted)."""
    if not missing:
        return []
    exhausted = sorted(
        connection.execute(
            sa.select(sync_gaps.c.record_key).where(
                _open(source, entity),
                sync_gaps.c.record_key.in_(missing),
                sync_gaps.c.attempts >= max_attempts,
            )
        ).scalars()
    )
    mark_unrecoverable(connection, source=source, entity=entity, keys=exhausted)
    return exhausted


def lost_keys(connection: sa.Connection, source: str, entity: str) -> list[str]:
    """The entity's unrecoverable keys, sorted."""
    return sorted(
        connection.execute(
            sa.select(sync_gaps.c.record_key).where(
                sync_gaps.c.source == source,
                sync_gaps.c.entity == entity,
                sync_gaps.c.status == "unrecoverable",
            )
        ).scalars()
    )


def give_up_exhausted(
    connection: sa.Connection,
    *,
    source: str,
    entity: str,
    missing: list[str],
    max_attempts: int,
    now: datetime,
) -> list[str]:
    """Missing keys whose attempts are used up become unrecoverable, with one alert for the
    entity that names every key lost so far (not only this run's)."""
    exhausted = take_exhausted(
        connection, source=source, entity=entity, missing=missing, max_attempts=max_attempts
    )
    if not exhausted:
        return []
    lost = lost_keys(connection, source, entity)
    shown = ", ".join(lost[:MAX_KEYS_IN_ALERT])
    more = f" (+{len(lost) - MAX_KEYS_IN_ALERT} more)" if len(lost) > MAX_KEYS_IN_ALERT else ""
    raise_alert(
        connection,
        severity="high",
        type="unrecovered_gap",
        message=(
            f"{source}.{entity}: {len(lost)} record(s) the source lists are still missing "
            f"from the warehouse after {max_attempts} resync attempts: {shown}{more}. "
            "Check these records at the source (are they valid? readable by the sync's "
            "account?), then re-run the entity's sync; see docs/operations.md, 'Gaps'."
        ),
        dedup_key=f"unrecovered_gap:{source}:{entity}",
        details={"keys": lost, "attempts": max_attempts},
        now=now,
    )
    return exhausted


def resolve_alert_when_nothing_is_lost(
    connection: sa.Connection, *, source: str, entity: str, now: datetime
) -> None:
    """The unrecovered-gap alert of an entity closes once none of its gaps is unrecoverable
    (the lost keys came back, or the source no longer lists them)."""
    if not lost_keys(connection, source, entity):
        resolve_alerts(connection, f"unrecovered_gap:{source}:{entity}", now)


@dataclass(frozen=True)
class ResyncCandidate:
    source: str
    entity: str
    keys: tuple[str, ...]
    attempt: int  # the attempt this resync would be (1-based)


def resync_candidates(
    connection: sa.Connection,
    *,
    max_attempts: int,
    backoff: timedelta,
    now: datetime,
    entities: Collection[tuple[str, str]],
    max_keys: int = 500,
) -> list[ResyncCandidate]:
    """Open gaps of these (source, entity) pairs due for a resync, grouped by entity: never
    tried, or tried long enough ago (the wait doubles with each attempt), and attempts left."""
    if not entities:
        return []
    rows = connection.execute(
        sa.select(
            sync_gaps.c.source,
            sync_gaps.c.entity,
            sync_gaps.c.record_key,
            sync_gaps.c.attempts,
            sync_gaps.c.last_attempt_at,
        )
        .where(
            sync_gaps.c.status == "open",
            sync_gaps.c.attempts < max_attempts,
            sa.tuple_(sync_gaps.c.source, sync_gaps.c.entity).in_(sorted(entities)),
        )
        .order_by(sync_gaps.c.source, sync_gaps.c.entity, sync_gaps.c.record_key)
    ).all()
    due: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for row in rows:
        if row.last_attempt_at is not None:
            last = row.last_attempt_at
            last = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
            if now - last < backoff * (2 ** max(row.attempts - 1, 0)):
                continue
        due.setdefault((row.source, row.entity), []).append((row.record_key, row.attempts))
    return [
        ResyncCandidate(
            source, entity, tuple(key for key, _ in keys[:max_keys]), max(a for _, a in keys) + 1
        )
        for (source, entity), keys in due.items()
    ]


def purge_resolved(engine: sa.Engine, before: datetime) -> int:
    """Retention: gaps resolved before `before` (open and unrecoverable ones stay)."""
    return bulk.delete_in_batches(
        engine,
        sync_gaps,
        (sync_gaps.c.status == "resolved") & (sync_gaps.c.resolved_at < before),
    )
