"""Writes into the inbox: deliveries (from the receiver, or resynced from the sender's own
records) and rejections, each committed before anyone is told it is stored.

Deliveries are stored with `INSERT … ON CONFLICT (delivery_id) DO NOTHING RETURNING
delivery_id, id`: a row back means the delivery is new, no row means its delivery id was
already there (a retry, or the same delivery racing itself on another connection). The
database's unique constraint decides, so there is no read-then-write window.

SQLite has one writer: writes from this process queue on a lock instead of spinning on the
busy timeout (which sleeps in growing steps and wrecks latency under load).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sync_platform.crashpoints import crashpoint
from sync_platform.warehouse import bulk
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.platform_tables import webhook_inbox, webhook_rejections

RECEIVED = "receiver"  # origin of a delivery the receiver got
RESYNCED = "resync"  # origin of a delivery put back from the sender's records
PENDING = "pending"
# Crash points (SYNC_PLATFORM_CRASHPOINT) the durability tests kill the receiver at.
BEFORE_COMMIT = "receiver:before_commit"
AFTER_COMMIT = "receiver:after_commit"


@dataclass(frozen=True)
class Delivery:
    """One authenticated, well-formed delivery, as it becomes an inbox row."""

    delivery_id: str
    workflow_key: str
    execution_id: str | None
    received_at: datetime
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Rejection:
    """An authenticated delivery that was refused, kept whole (nothing lost)."""

    received_at: datetime
    workflow_key: str
    delivery_id: str | None
    status_code: int
    reason: str
    headers: dict[str, str]
    body: bytes


def insert_unless_present(dialect: str) -> Any:
    """INSERT … ON CONFLICT (delivery_id) DO NOTHING: a delivery id is stored once, whoever
    stores it first (the receiver, or the gap resync)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(webhook_inbox).on_conflict_do_nothing(
        index_elements=[webhook_inbox.c.delivery_id]
    )


def _insert_new(dialect: str) -> Any:
    return insert_unless_present(dialect).returning(webhook_inbox.c.delivery_id, webhook_inbox.c.id)


def _row(delivery: Delivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "workflow_key": delivery.workflow_key,
        "execution_id": delivery.execution_id,
        "received_at": delivery.received_at,
        "origin": RECEIVED,
        "headers": delivery.headers,
        "body": delivery.body,
        "status": PENDING,
    }


class Inbox:
    """Writes deliveries and rejections; safe to call from many threads at once."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._insert = _insert_new(self.dialect)
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )

    def store(self, delivery: Delivery) -> int | None:
        """Commit one delivery; its inbox id if new, None if its delivery id was already in."""
        (result,) = self.store_batch([delivery])
        if isinstance(result, Exception):
            raise result
        return result

    def store_batch(self, deliveries: Sequence[Delivery]) -> list[int | Exception | None]:
        """Commit deliveries in one transaction; per delivery, in order: its new inbox id,
        None (already stored: a duplicate) or the error that kept it out.

        Within the batch the first of several deliveries with one id is the one inserted;
        the others are duplicates of it (answered once it is committed, like any duplicate).
        """
        first: dict[str, int] = {}
        for index, delivery in enumerate(deliveries):
            first.setdefault(delivery.delivery_id, index)
        unique = [deliveries[index] for index in first.values()]
        try:
            inserted = self._insert_committed(unique)
        except sa.exc.SQLAlchemyError as exc:
            # One delivery: its error. Several: find the one the database refuses.
            inserted = exc if len(unique) == 1 else self._insert_one_by_one(unique)
        results: list[int | Exception | None] = []
        for index, delivery in enumerate(deliveries):
            if first[delivery.delivery_id] != index:
                results.append(None)
            elif isinstance(inserted, Exception):
                results.append(inserted)
            else:
                results.append(inserted.get(delivery.delivery_id))
        return results

    def _insert_committed(self, deliveries: Sequence[Delivery]) -> dict[str, int]:
        rows = [_row(delivery) for delivery in deliveries]
        with self._write_lock, self.engine.begin() as connection:
            inserted = dict(connection.execute(self._insert, rows).all())
            crashpoint(BEFORE_COMMIT)
        crashpoint(AFTER_COMMIT)
        return inserted

    def _insert_one_by_one(self, deliveries: Sequence[Delivery]) -> dict[str, int | Exception]:
        outcomes: dict[str, int | Exception] = {}
        for delivery in deliveries:
            try:
                outcomes.update(self._insert_committed([delivery]))
            except sa.exc.SQLAlchemyError as exc:
                outcomes[delivery.delivery_id] = exc
        return outcomes

    def store_rejection(self, rejection: Rejection) -> None:
        with self._write_lock, self.engine.begin() as connection:
            connection.execute(
                webhook_rejections.insert(),
                {
                    "received_at": rejection.received_at,
                    "workflow_key": rejection.workflow_key,
                    "delivery_id": rejection.delivery_id,
                    "status_code": rejection.status_code,
                    "reason": rejection.reason,
                    "headers": rejection.headers,
                    "body": rejection.body,
                },
            )

    def check(self) -> None:
        """Raise unless the warehouse answers and has the inbox table (for /healthz)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            connection.execute(sa.text("SELECT 1"))
            connection.execute(sa.select(webhook_inbox.c.id).limit(1))
            connection.rollback()


def store_resynced(
    connection: sa.Connection,
    *,
    delivery_id: str,
    workflow_key: str,
    execution_id: str,
    body: str,
    now: datetime,
) -> None:
    """Put a delivery the receiver never got back into the inbox, pending (its delivery id
    unchanged, so a late original is a duplicate, not a second event)."""
    connection.execute(
        insert_unless_present(connection.dialect.name).values(
            delivery_id=delivery_id,
            workflow_key=workflow_key,
            execution_id=execution_id,
            received_at=now,
            origin=RESYNCED,
            headers={},
            body=body,
            status=PENDING,
        )
    )


def purge_processed(engine: sa.Engine, before: datetime) -> int:
    """Retention: deliveries processed before `before` (their events are in the event
    tables); pending and quarantined deliveries stay."""
    return bulk.delete_in_batches(
        engine,
        webhook_inbox,
        (webhook_inbox.c.status == "processed") & (webhook_inbox.c.processed_at < before),
    )
