"""Processing the inbox: one workflow's pending deliveries handed over as records (the event
source of the n8n event assets), then marked processed (or quarantined, with the reason) in
the load's own transaction, so a delivery is never loaded twice nor marked without being
loaded; and what is pending, for the sensor that launches processing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from sync_platform.inbox.store import PENDING
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.platform_tables import webhook_inbox

Records = list[dict[str, Any]]

DEFAULT_BATCH_SIZE = 5_000
PAGE_SIZE = 1_000
INBOX_FIELD = "_inbox"  # where the inbox row's own columns sit in a record (see n8n_events.yaml)


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _inbox_id(raw: dict[str, Any]) -> int | None:
    """The inbox row a rejected record came from (a raw record, or a mapped row)."""
    inbox = raw.get(INBOX_FIELD)
    value = inbox.get("id") if isinstance(inbox, dict) else raw.get("inbox_id")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


class Rejected(Protocol):
    """A record the load refused: the raw record it was made from, and why."""

    raw: dict[str, Any]

    @property
    def reason(self) -> str: ...


class InboxBatch:
    """At most `batch_size` pending deliveries of one workflow, oldest first."""

    def __init__(self, engine: sa.Engine, workflow_key: str, batch_size: int = DEFAULT_BATCH_SIZE):
        self.engine = engine
        self.workflow_key = workflow_key
        self.batch_size = batch_size
        self.taken: list[int] = []
        self.unreadable: dict[int, str] = {}  # inbox id → why its body is not an event

    def pages(self, _since: datetime | None) -> Iterator[Records]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    webhook_inbox.c.id,
                    webhook_inbox.c.delivery_id,
                    webhook_inbox.c.execution_id,
                    webhook_inbox.c.received_at,
                    webhook_inbox.c.origin,
                    webhook_inbox.c.body,
                )
                .where(
                    webhook_inbox.c.workflow_key == self.workflow_key,
                    webhook_inbox.c.status == PENDING,
                )
                .order_by(webhook_inbox.c.id)
                .limit(self.batch_size)
            ).all()
        page: Records = []
        for row in rows:
            self.taken.append(row.id)
            try:
                body = json.loads(row.body)
            except ValueError as exc:
                self.unreadable[row.id] = f"body is not JSON ({exc})"
                continue
            if not isinstance(body, dict):
                self.unreadable[row.id] = f"body is a JSON {type(body).__name__}, not an object"
                continue
            inbox = {
                "id": row.id,
                "delivery_id": row.delivery_id,
                "execution_id": row.execution_id,
                "received_at": _iso(row.received_at),
                "origin": row.origin,
            }
            page.append({**body, INBOX_FIELD: inbox})
            if len(page) == PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def mark(self, connection: sa.Connection, sync_run_id: int, rejects: list[Rejected]) -> None:
        """In the load transaction: what was loaded is processed, what was not is quarantined
        with its reason (the body stays in the inbox, nothing is lost)."""
        reasons = dict(self.unreadable)
        for reject in rejects:
            inbox_id = _inbox_id(reject.raw)
            if inbox_id is not None:
                reasons[inbox_id] = reject.reason
        now = datetime.now(UTC)
        pending = webhook_inbox.c.status == PENDING
        processed = [inbox_id for inbox_id in self.taken if inbox_id not in reasons]
        for start in range(0, len(processed), PAGE_SIZE):
            connection.execute(
                sa.update(webhook_inbox)
                .where(webhook_inbox.c.id.in_(processed[start : start + PAGE_SIZE]), pending)
                .values(status="processed", processed_at=now, processed_by_run_id=sync_run_id)
            )
        for inbox_id, reason in reasons.items():
            connection.execute(
                sa.update(webhook_inbox)
                .where(webhook_inbox.c.id == inbox_id, pending)
                .values(
                    status="quarantined",
                    processed_at=now,
                    processed_by_run_id=sync_run_id,
                    reason=reason,
                )
            )

    def metadata(self) -> dict[str, Any]:
        return {"inbox_deliveries": len(self.taken), "inbox_unreadable": len(self.unreadable)}


def pending_by_workflow(engine: sa.Engine, after_id: int = 0) -> dict[str, int]:
    """Workflow key → highest pending inbox id above `after_id` (read only)."""
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        rows = connection.execute(
            sa.select(webhook_inbox.c.workflow_key, sa.func.max(webhook_inbox.c.id))
            .where(webhook_inbox.c.status == PENDING, webhook_inbox.c.id > after_id)
            .group_by(webhook_inbox.c.workflow_key)
        ).all()
    return {key: newest for key, newest in rows}
