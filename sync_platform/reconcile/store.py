"""Reconciliation runs, the discrepancies they found and the audit of what people did.

A record has at most one discrepancy row, reopened when a later reconciliation finds the
record different again: a difference that does not change is never logged twice, an
ignored one stays quiet until its expiry (or until the difference itself changes), and one
that went away by itself is closed as `gone`. A record a sync holds for review (kind
`conflict`, engine/review.py) is left to it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.alerting.store import resolve_alerts
from sync_platform.engine import review
from sync_platform.engine.audit import utcnow
from sync_platform.reconcile.compare import Discrepancy, EntityComparison
from sync_platform.warehouse.platform_tables import (
    reconciliation_actions,
    reconciliation_discrepancies,
    reconciliation_runs,
)

D = reconciliation_discrepancies
ALERT_TYPE = "reconciliation_discrepancies"


def alert_key(source: str) -> str:
    """The open-discrepancies alert of a source (raised by scheduled reconciliations)."""
    return f"reconciliation:{source}"


def close_alert_when_clear(connection: sa.Connection, source: str) -> None:
    """Once nothing a reconciliation found is open, its alert is no longer true."""
    still = connection.execute(
        sa.select(sa.func.count()).where(
            D.c.source == source, D.c.status == "open", D.c.kind != review.CONFLICT
        )
    ).scalar_one()
    if not still:
        resolve_alerts(connection, alert_key(source))


def start_run(engine: sa.Engine, source: str, trigger: str, dagster_run_id: str | None) -> int:
    with engine.begin() as connection:
        return connection.execute(
            sa.insert(reconciliation_runs)
            .values(
                source=source,
                trigger=trigger,
                dagster_run_id=dagster_run_id,
                started_at=utcnow(),
                status="running",
            )
            .returning(reconciliation_runs.c.id)
        ).scalar_one()


def finish_run(
    engine: sa.Engine, run_id: int, status: str, summary: dict | None, message: str | None = None
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.update(reconciliation_runs)
            .where(reconciliation_runs.c.id == run_id)
            .values(finished_at=utcnow(), status=status, summary=summary, message=message)
        )


def fingerprint(found: Discrepancy) -> str:
    return review.fingerprint(found.kind, found.source_values, found.warehouse_values)


@dataclass
class Recorded:
    """What one entity's comparison changed in the discrepancy table."""

    opened: list[str] = field(default_factory=list)  # keys newly open (not open before)
    still_open: int = 0
    ignored: int = 0
    gone: int = 0
    counts: Counter = field(default_factory=Counter)  # (kind, severity) of open ones


def record_comparison(
    connection: sa.Connection, run_id: int, source: str, comparison: EntityComparison
) -> Recorded:
    now = utcnow()
    entity = comparison.entity
    existing = {
        row.record_key: row
        for row in connection.execute(
            sa.select(D).where(D.c.source == source, D.c.entity == entity)
        )
    }
    recorded = Recorded()
    # A record a sync holds for review is the sync's to report (engine/review.py).
    held = {
        k for k, row in existing.items() if row.kind == review.CONFLICT and row.status != "resolved"
    }
    seen = set(held)
    for found in comparison.discrepancies:
        if found.record_key in held:
            continue
        seen.add(found.record_key)
        values = {
            "kind": found.kind,
            "severity": found.severity,
            "fields": found.fields,
            "source_values": found.source_values,
            "warehouse_values": found.warehouse_values,
            "fingerprint": fingerprint(found),
            "last_seen_at": now,
            "last_run_id": run_id,
        }
        row = existing.get(found.record_key)
        if row is None:
            connection.execute(
                sa.insert(D).values(
                    source=source,
                    entity=entity,
                    record_key=found.record_key,
                    status="open",
                    first_seen_at=now,
                    **values,
                )
            )
            recorded.opened.append(found.record_key)
        else:
            quiet = row.fingerprint == values["fingerprint"] and review.ignore_in_force(row, now)
            if quiet:
                values["status"] = "ignored"
            elif row.status != "open" or row.fingerprint != values["fingerprint"]:
                values |= {"status": "open", "resolution": None, "resolved_at": None}
                if row.status != "open":
                    values |= {"first_seen_at": now, "ignored_until": None, "note": None}
                recorded.opened.append(found.record_key)
            connection.execute(sa.update(D).where(D.c.id == row.id).values(values))
        if values.get("status", "open") == "ignored":
            recorded.ignored += 1
        else:
            recorded.counts[(found.kind, found.severity)] += 1
    recorded.still_open = sum(recorded.counts.values()) - len(recorded.opened)
    vanished = [
        row.id
        for key, row in existing.items()
        if key not in seen and row.status in ("open", "ignored")
    ]
    if vanished:
        connection.execute(
            sa.update(D)
            .where(D.c.id.in_(vanished))
            .values(status="gone", resolution="gone", resolved_at=now, last_run_id=run_id)
        )
    recorded.gone = len(vanished)
    return recorded


@dataclass
class Selection:
    """Which discrepancies an action applies to: every filter given must match."""

    source: str | None = None
    entity: str | None = None
    kinds: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # any of them differs
    keys: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=lambda: ["open"])

    @property
    def narrowed(self) -> bool:
        return bool(self.kinds or self.severities or self.fields or self.keys or self.ids)


def select_discrepancies(
    connection: sa.Connection, selection: Selection, limit: int | None = None
) -> list[dict[str, Any]]:
    query = sa.select(D)
    for column, wanted in (
        (D.c.source, [selection.source] if selection.source else []),
        (D.c.entity, [selection.entity] if selection.entity else []),
        (D.c.kind, selection.kinds),
        (D.c.severity, selection.severities),
        (D.c.record_key, selection.keys),
        (D.c.id, selection.ids),
        (D.c.status, selection.statuses),
    ):
        if wanted:
            query = query.where(column.in_(wanted))
    rows = [
        dict(row)
        for row in connection.execute(
            query.order_by(D.c.source, D.c.entity, D.c.record_key)
        ).mappings()
    ]
    if selection.fields:  # JSON lists: filtered here, the same on both dialects
        rows = [r for r in rows if set(r["fields"] or []) & set(selection.fields)]
    return rows[:limit] if limit else rows


def write_action(
    connection: sa.Connection,
    *,
    actor: str,
    action: str,
    discrepancy: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    detail: str | None = None,
    dagster_run_id: str | None = None,
) -> int:
    return connection.execute(
        sa.insert(reconciliation_actions)
        .values(
            at=utcnow(),
            actor=actor,
            action=action,
            source=discrepancy["source"],
            entity=discrepancy["entity"],
            record_key=discrepancy["record_key"],
            discrepancy_id=discrepancy["id"],
            before=before,
            after=after,
            detail=detail,
            dagster_run_id=dagster_run_id,
        )
        .returning(reconciliation_actions.c.id)
    ).scalar_one()


def close(
    connection: sa.Connection,
    discrepancy_id: int,
    *,
    status: str,
    resolution: str,
    note: str | None = None,
    ignored_until: datetime | None = None,
) -> None:
    connection.execute(
        sa.update(D)
        .where(D.c.id == discrepancy_id)
        .values(
            status=status,
            resolution=resolution,
            note=note,
            ignored_until=ignored_until,
            resolved_at=utcnow(),
        )
    )


def latest_runs(connection: sa.Connection, source: str | None, limit: int = 10) -> list[dict]:
    query = sa.select(reconciliation_runs).order_by(reconciliation_runs.c.id.desc()).limit(limit)
    if source:
        query = query.where(reconciliation_runs.c.source == source)
    return [dict(row) for row in connection.execute(query).mappings()]


def actions_for(connection: sa.Connection, discrepancy_id: int) -> list[dict]:
    query = (
        sa.select(reconciliation_actions)
        .where(reconciliation_actions.c.discrepancy_id == discrepancy_id)
        .order_by(reconciliation_actions.c.id)
    )
    return [dict(row) for row in connection.execute(query).mappings()]
