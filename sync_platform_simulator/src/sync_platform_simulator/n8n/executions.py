"""An execution of the simulated n8n and its items (one delivery each) with the requests
each item's HTTP node made, and what became of every delivery id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync_platform_simulator.n8n.models import (
    SEND_NODE,
    DeliveryOutcomes,
    ExecutionStatus,
    Failure,
    N8nWorkflow,
)


@dataclass
class Attempt:
    status: int | None
    error: str | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Item:
    """One item of an execution: one delivery (one webhook-id)."""

    index: int
    delivery_id: str
    event: dict[str, Any]
    body: str
    dropped: bool = False
    duplicated: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    seen: Attempt | None = None  # the answer the HTTP node saw in its last run

    @property
    def delivered(self) -> bool:
        return any(a.ok for a in self.attempts)

    @property
    def reached(self) -> bool:
        return any(a.status is not None for a in self.attempts)


@dataclass
class Execution:
    id: str
    workflow: N8nWorkflow
    started_at: datetime
    timestamp: int
    items: list[Item]
    send_node: str = SEND_NODE
    failure: Failure | None = None
    status: ExecutionStatus = "running"
    stopped_at: datetime | None = None

    @property
    def int_id(self) -> int:
        return int(self.id)

    # The first item, as the single-item (convention) views name it.
    @property
    def webhook_id(self) -> str:
        return self.items[0].delivery_id

    @property
    def event(self) -> dict[str, Any]:
        return self.items[0].event

    @property
    def body(self) -> str:
        return self.items[0].body

    @property
    def dropped(self) -> bool:
        return any(item.dropped for item in self.items)

    @property
    def duplicated(self) -> bool:
        return any(item.duplicated for item in self.items)

    @property
    def delivered(self) -> bool:
        return any(item.delivered for item in self.items)

    @property
    def attempts(self) -> list[Attempt]:
        return [attempt for item in self.items for attempt in item.attempts]


def outcome(execution: Execution, item: Item) -> str:
    """What became of one delivery: not_built, not_sent, dropped, delivered, failed, pending."""
    if execution.failure == "before_send":
        return "not_built"
    if execution.failure == "in_send":
        return "not_sent"
    if item.dropped:
        return "dropped"
    if item.delivered:
        return "delivered"
    if execution.status == "running":
        return "pending"
    return "failed"


def delivery_outcomes(executions: list[Execution]) -> DeliveryOutcomes:
    result = DeliveryOutcomes()
    for execution in executions:
        for item in execution.items:
            what = outcome(execution, item)
            if what == "not_built":
                continue
            result.ids.append(item.delivery_id)
            getattr(result, what).append(item.delivery_id)
            if item.reached:
                result.sent.append(item.delivery_id)
            if item.duplicated:
                result.duplicated.append(item.delivery_id)
    return result


def _seen_ok(item: Item) -> bool:
    """Whether the HTTP node's last run got a 2xx for this item."""
    return item.seen is not None and item.seen.ok


def _attempt_list(item: Item) -> list[int | str | None]:
    return [a.status if a.status is not None else a.error for a in item.attempts]
