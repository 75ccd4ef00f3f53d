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


def where_delivery_is(
    connection: sa.Connection, delivery_id: str
) -> Literal["inbox", "rejected"] | None:
    """'inbox' or 'rejected' when the receiver already has this delivery (without its
    execution id, or refused it and kept it with the reason); None otherwise."""
    inbox = sa.select(webhook_inbox.c.id).where(webhook_inbox.c.delivery_id == delivery_id)
    if connection.execute(inbox).first() is not None:
        return "inbox"
    rejected = sa.select(webhook_rejections.c.id).where(
        webhook_rejections.c.delivery_id == delivery_id
    )
    return "rejected" if connection.execute(rejected).first() is not None else None


def first_received_at(connection: sa.Connection) -> datetime | None:
    """When the oldest delivery in the inbox arrived (None: the inbox has never been used)."""
    return connection.execute(sa.select(sa.func.min(webhook_inbox.c.received_at))).scalar()
