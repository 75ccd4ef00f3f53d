"""What an execution sends: a made-up event per item (form submissions, leads, order
updates) and the headers of its request, signed as the workflow is configured."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sync_platform_simulator.n8n.executions import Execution, Item
from sync_platform_simulator.n8n.models import N8nWorkflow, iso_ms
from sync_platform_simulator.signing import signed_headers

FIRST_NAMES = ["Ava", "Noah", "Mia", "Liam", "Zoe", "Jack", "Ella", "Leo", "Ruby", "Max"]
LAST_NAMES = ["Nguyen", "Smith", "Patel", "Brown", "Chen", "Wilson", "Kelly", "Singh"]
FORMS = ["contact", "test_drive", "finance_enquiry", "trade_in"]
MESSAGES = [
    "Is this car still available?",
    "Can I book a test drive on Saturday?",
    "What finance options do you have?",
    "I'd like a trade-in valuation.",
    "Please call me back after 5pm.",
]
LEAD_SOURCES = ["website", "carsales", "facebook", "walk-in", "phone"]
MAKES = {"Toyota": ["Corolla", "RAV4"], "Mazda": ["CX-5", "3"], "Ford": ["Ranger", "Everest"]}
ORDER_STATUSES = ["created", "paid", "fulfilled", "shipped", "delivered", "cancelled", "refunded"]
SKUS = ["ACC-FLOORMAT", "ACC-TOWBAR", "SVC-DETAIL", "SVC-TINT", "ACC-ROOFRACK"]


def _request_headers(workflow: N8nWorkflow, execution: Execution, item: Item) -> dict[str, str]:
    """The headers the HTTP node sends for one item, signed once when the execution runs."""
    headers = {
        "Content-Type": "application/json",
        "X-N8N-Execution-Id": execution.id,
        "User-Agent": "n8n",
    }
    if workflow.auth == "standard_webhooks":
        return headers | signed_headers(
            workflow.secret or "", item.delivery_id, execution.timestamp, item.body.encode()
        )
    return headers | {"webhook-id": item.delivery_id, workflow.header_name: workflow.secret or ""}


def _person(rng: random.Random, sequence: int) -> dict[str, str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "name": f"{first} {last}",
        "email": f"{first}.{last}{sequence}@example.com".lower(),
        "phone": f"04{rng.randint(0, 99_999_999):08d}",
    }


def make_event(
    workflow: N8nWorkflow, rng: random.Random, sequence: int, at: datetime
) -> dict[str, Any]:
    """The event one item of this workflow sends; `eventId` is unique per item."""
    event_id = f"evt_{workflow.key}_{sequence:07d}"
    when = iso_ms(at)
    if workflow.kind == "form_submission":
        stock = f"STK{rng.randint(0, 499):06d}"
        return {
            "event": "form_submission",
            "eventId": event_id,
            "submissionId": f"FS-{sequence:07d}",
            "formId": rng.choice(FORMS),
            "submittedAt": when,
            "page": f"/stock/{stock}",
            "fields": {
                **_person(rng, sequence),
                "message": rng.choice(MESSAGES),
                "stockNumber": stock if rng.random() < 0.7 else None,
            },
        }
    if workflow.kind == "new_lead":
        make = rng.choice(list(MAKES))
        return {
            "event": "new_lead",
            "eventId": event_id,
            "leadId": f"LD-{sequence:07d}",
            "createdAt": when,
            "source": rng.choice(LEAD_SOURCES),
            "status": "new",
            "customer": _person(rng, sequence),
            "interest": {
                "stockNumber": f"STK{rng.randint(0, 499):06d}",
                "make": make,
                "model": rng.choice(MAKES[make]),
            },
        }
    lines = [
        {
            "sku": rng.choice(SKUS),
            "quantity": rng.randint(1, 3),
            "unitPrice": round(rng.uniform(20, 900), 2),
        }
        for _ in range(rng.randint(1, 3))
    ]
    return {
        "event": "order_update",
        "eventId": event_id,
        "orderId": f"SO-{rng.randint(100_000, 100_000 + 4 * sequence):06d}",
        "status": rng.choice(ORDER_STATUSES),
        "updatedAt": when,
        "currency": "AUD",
        "total": round(sum(line["quantity"] * line["unitPrice"] for line in lines), 2),
        "lines": lines,
    }
