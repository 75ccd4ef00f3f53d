"""What the inbox already holds, for the delivery-gap resync and the backup rule."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import webhook_inbox, webhook_rejections

CHUNK = 500  # ids per IN (…) list


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def received_execution_ids(
    connection: sa.Connection, workflow_key: str, execution_ids: list[str]
) -> set[str]:
    """Which of these executions of a workflow have a delivery in the inbox."""
    received: set[str] = set()
    for chunk in _chunks(execution_ids):
        received.update(
            connection.execute(
                sa.select(webhook_inbox.c.execution_id).where(
                    webhook_inbox.c.workflow_key == workflow_key,
                    webhook_inbox.c.execution_id.in_(chunk),
                )
            ).scalars()
        )
    return received


def where_deliveries_are(
    connection: sa.Connection, delivery_ids: list[str]
) -> dict[str, Literal["inbox", "rejected"]]:
    """For each of these deliveries the receiver already has: 'inbox', or 'rejected' (it
    refused it and kept it with the reason); the others are absent."""
    where: dict[str, Literal["inbox", "rejected"]] = {}
    for chunk in _chunks(delivery_ids):
        rejected = sa.select(webhook_rejections.c.delivery_id).where(
            webhook_rejections.c.delivery_id.in_(chunk)
        )
        where.update(dict.fromkeys(connection.execute(rejected).scalars(), "rejected"))
        inbox = sa.select(webhook_inbox.c.delivery_id).where(webhook_inbox.c.delivery_id.in_(chunk))
        where.update(dict.fromkeys(connection.execute(inbox).scalars(), "inbox"))
    return where


def first_received_at(connection: sa.Connection) -> datetime | None:
    """When the oldest delivery in the inbox arrived (None: the inbox has never been used)."""
    return connection.execute(sa.select(sa.func.min(webhook_inbox.c.received_at))).scalar()
