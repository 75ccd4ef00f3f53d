"""Records both the source and the warehouse changed since the last sync, held at the
warehouse's version for a person to decide (conflict_strategy: manual_review).

They live with the reconciliation's discrepancies (kind `conflict`, one row per record), so
`sync-platform conflicts list` shows them side by side and the same resolution actions and
audit apply. A conflict that does not change is not logged again; a new one notifies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.alerting.store import raise_alert, resolve_alerts
from sync_platform.config.models import EntityConfig
from sync_platform.engine.audit import as_utc
from sync_platform.engine.severity import classify
from sync_platform.warehouse.platform_tables import reconciliation_discrepancies as D

CONFLICT = "conflict"


def fingerprint(kind: str, source_values: Any, warehouse_values: Any) -> str:
    """Of the kind and both sides' values: a change in either is a new difference."""
    body = json.dumps([kind, source_values, warehouse_values], sort_keys=True, default=str)
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def ignore_in_force(row: Any, now: datetime) -> bool:
    """The record's discrepancy is ignored and its expiry has not passed."""
    return row.status == "ignored" and (
        row.ignored_until is None or as_utc(row.ignored_until) > now
    )


def alert_key(source: str, entity: str) -> str:
    return f"conflict_review:{source}.{entity}"


def hold_for_review(
    connection: sa.Connection,
    items: list[dict[str, Any]],
    *,
    source: str,
    entity: EntityConfig,
    sync_run_id: int,
    now: datetime,
) -> int:
    """Record the held pairs; returns how many are new (not already waiting unchanged)."""
    if not items:
        return 0
    keys = [item["record_key"] for item in items]
    existing = {
        row.record_key: row
        for start in range(0, len(keys), 500)
        for row in connection.execute(
            sa.select(D).where(
                D.c.source == source,
                D.c.entity == entity.name,
                D.c.record_key.in_(keys[start : start + 500]),
            )
        )
    }
    new = []
    for item in items:
        values = {
            "kind": CONFLICT,
            "severity": classify(entity, CONFLICT, item["fields"], item["current"]),
            "fields": item["fields"],
            "source_values": item["incoming"],
            "warehouse_values": item["current"],
            "fingerprint": fingerprint(CONFLICT, item["incoming"], item["current"]),
            "last_seen_at": now,
            "note": f"held by sync #{sync_run_id}: both sides changed since the last sync",
        }
        row = existing.get(item["record_key"])
        if row is None:
            connection.execute(
                sa.insert(D).values(
                    source=source,
                    entity=entity.name,
                    record_key=item["record_key"],
                    status="open",
                    first_seen_at=now,
                    **values,
                )
            )
            new.append(item["record_key"])
            continue
        same = row.kind == CONFLICT and row.fingerprint == values["fingerprint"]
        if same and (row.status == "open" or ignore_in_force(row, now)):
            values.pop("note")
        else:
            values |= {"status": "open", "resolution": None, "resolved_at": None}
            values |= {"ignored_until": None, "first_seen_at": now}
            new.append(item["record_key"])
        connection.execute(sa.update(D).where(D.c.id == row.id).values(values))
    if new:
        raise_alert(
            connection,
            severity="warning",
            type="sync_conflict_review",
            message=f"{source}.{entity.name}: {len(new)} record(s) changed both at the source "
            "and in the warehouse are held at the warehouse's version for review: "
            "`sync-platform conflicts list` (docs/reconciliation.md)",
            dedup_key=alert_key(source, entity.name),
            details={"new": new[:25]},
            now=now,
            notify=True,
        )
    return len(new)


def close_alert_when_reviewed(connection: sa.Connection, source: str, entity: str) -> None:
    """The review alert closes once no conflict of the entity waits for a person."""
    waiting = connection.execute(
        sa.select(sa.func.count()).where(
            D.c.source == source, D.c.entity == entity, D.c.kind == CONFLICT, D.c.status == "open"
        )
    ).scalar_one()
    if not waiting:
        resolve_alerts(connection, alert_key(source, entity))
