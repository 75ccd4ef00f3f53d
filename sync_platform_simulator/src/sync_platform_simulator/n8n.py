"""An n8n instance, simulated: workflows that SEND signed webhooks to the receiver, and the
n8n public API that lists what they ran.

Sending (`POST /_sim/n8n/send`, or `N8nData.send` / `send_sync` in Python): each delivery is
one workflow execution. Its payload is generated from a seeded RNG per workflow type (form
submissions, new leads, order updates), signed as the workflow is configured (Standard
Webhooks HMAC, or a shared-secret header) and POSTed to `<target>/webhooks/n8n/<key>` with
`webhook-id: n8n-<workflowId>-<executionId>` and `X-N8N-Execution-Id`. Like an HTTP Request
node with "Retry On Fail", a delivery answered non-2xx (or not at all) is tried again, a few
times at a fixed interval; with "On Error: Continue" (the default here) the execution still
ends `success` when every try failed. Faults per send:
- `drop_rate`: the execution succeeds in n8n, but its webhook never arrives (lost on the way);
- `duplicate_rate`: the webhook arrives twice (same webhook-id and body, re-signed);
- `delay_ms`: each delivery waits this long before it is sent (arrivals interleave).
The simulator remembers every execution it ran, which of them it dropped, duplicated or
failed to deliver (`GET /_sim/n8n/executions`).

The public API under `/n8n/api/v1` (header `X-N8N-API-KEY`), shaped as n8n 1.x serves it:
- `GET /executions?workflowId=&status=&limit=&cursor=&includeData=`: newest first, pages of
  at most 250 (default 100), `{"data": [...], "nextCursor": <base64 {"lastId","limit"}> | null}`;
  running executions are left out, as n8n does;
- `GET /executions/{id}?includeData=true`: one execution; with data, its run data
  (`data.resultData.runData`) and `workflowData` (nodes, connections);
- `GET /workflows`: the workflows, with their ids.
Errors are n8n's `{"message": ...}`. Executions whose `stoppedAt` is older than
`retention_days` (default 14, n8n's EXECUTIONS_DATA_MAX_AGE of 336 h) on the simulated clock,
or beyond the newest `max_count` (n8n's EXECUTIONS_DATA_PRUNE_MAX_COUNT, 10,000), are pruned:
absent from lists, 404 by id. The clock is real time plus an offset that
`POST /_sim/n8n/clock` moves forward (signatures use real time, as the receiver checks them).

Where a delivery's payload lives in an execution (what the gap resync extracts): the item
that entered the node "Send to warehouse" — the first output item of the node named in
`runData["Send to warehouse"][0].source[0].previousNode` — carries `webhookId`, `timestamp`
and `body`, the exact JSON text that was (or should have been) sent. A send's `send_node`
names that node differently in its executions only (a node renamed in n8n between runs), so
the gap resync cannot find their payload. Reference: docs/sources/n8n.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sync_platform_simulator.environment import (
    N8N_API_KEY_ENV,
    N8N_WEBHOOK_SECRET_PREFIX,
    N8N_WORKFLOW_ID_PREFIX,
)
from sync_platform_simulator.signing import SECRET_PREFIX, signed_headers

DEFAULT_API_KEY = "sim-n8n-key"
API_PREFIX = "/n8n/api/v1"
WEBHOOK_PATH = "/webhooks/n8n/{key}"
DEFAULT_PAGE = 100
MAX_PAGE = 250
SEND_NODE = "Send to warehouse"
MAX_NODE_NAME = 128  # our bound for a node name sent in a request, not one n8n documents
PAYLOAD_NODE = "Build payload"
SIGN_NODE = "Sign"
WORKFLOW_KINDS = ("form_submission", "new_lead", "order_update")
ExecutionStatus = Literal["success", "error", "running"]
AuthMode = Literal["standard_webhooks", "header"]

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


def iso_ms(moment: datetime) -> str:
    """n8n's timestamp format: UTC with milliseconds and Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def default_workflow_id(key: str) -> str:
    """A stable n8n-style workflow id (16 letters and digits) for a workflow key."""
    digest = hashlib.sha256(f"n8n-workflow:{key}".encode()).digest()
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[b % len(alphabet)] for b in digest[:16])


def default_secret(key: str, auth: AuthMode) -> str:
    """The simulator's fixed secret for a workflow (see `environment()`); never for production."""
    if auth == "header":
        return f"sim-n8n-{key}-shared-secret"
    return SECRET_PREFIX + base64.b64encode(f"sim-n8n-{key}-signing-key".encode()).decode()


class N8nWorkflow(BaseModel):
    """A workflow the simulated n8n runs: which webhook it sends and how it signs it."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")
    kind: Literal["form_submission", "new_lead", "order_update"] | None = Field(
        default=None, description="payload type; None: the key, if it names one"
    )
    id: str | None = Field(default=None, description="None: derived from the key")
    name: str | None = None
    auth: AuthMode = "standard_webhooks"
    secret: str | None = Field(default=None, description="None: the simulator's fixed one")
    header_name: str = "X-Webhook-Secret"

    @model_validator(mode="after")
    def _fill_defaults(self) -> N8nWorkflow:
        if self.kind is None:
            if self.key not in WORKFLOW_KINDS:
                raise ValueError(f"kind is required for workflow {self.key!r}")
            self.kind = self.key  # type: ignore[assignment]
        self.id = self.id or default_workflow_id(self.key)
        self.name = self.name or self.key.replace("_", " ").capitalize() + " → warehouse"
        self.secret = self.secret or default_secret(self.key, self.auth)
        return self


def _default_workflows() -> list[N8nWorkflow]:
    return [
        N8nWorkflow(key="form_submission"),
        N8nWorkflow(key="new_lead"),
        N8nWorkflow(key="order_update", auth="header"),
    ]


class N8nSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = DEFAULT_API_KEY
    workflows: list[N8nWorkflow] = Field(default_factory=_default_workflows)
    retention_days: float = Field(default=14, gt=0)
    max_count: int = Field(default=10_000, ge=0, description="0: no limit")
    max_tries: int = Field(default=3, ge=1, le=5, description="HTTP Request node Max Tries")
    wait_between_tries_ms: int = Field(default=1000, ge=0, le=5000)
    continue_on_fail: bool = Field(
        default=True, description="On Error: Continue (the execution succeeds anyway)"
    )


class SendRequest(BaseModel):
    """The body of `POST /_sim/n8n/send`: run `count` executions of one workflow."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="the receiver's base URL, e.g. http://127.0.0.1:8780")
    workflow_key: str
    count: int = Field(default=1, ge=0, le=100_000)
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    delay_ms: int = Field(default=0, ge=0, le=60_000)
    seed: int | None = Field(default=None, description="None: continue the simulator's RNG")
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    auth: AuthMode | None = Field(default=None, description="override the workflow's")
    secret: str | None = Field(default=None, description="override the workflow's")
    header_name: str | None = None
    max_tries: int | None = Field(default=None, ge=1, le=5)
    wait_between_tries_ms: int | None = Field(default=None, ge=0, le=5000)
    send_node: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NODE_NAME,
        pattern=r"\S",
        description="None: the workflow's 'Send to warehouse'. The HTTP node's name in these "
        "executions only (renamed in n8n): the gap resync cannot find their payload",
    )


class SendReport(BaseModel):
    workflow_key: str
    workflow_id: str
    executions: list[str]
    delivered: list[str] = Field(description="answered 2xx at least once")
    dropped: list[str] = Field(description="succeeded in n8n; the webhook never arrived")
    duplicated: list[str] = Field(description="arrived twice")
    failed: list[str] = Field(description="every try answered non-2xx or not at all")
    requests: int
    responses: dict[str, int] = Field(description="HTTP status (or 'error') → count")


@dataclass
class Attempt:
    status: int | None
    error: str | None = None
    body: Any = None


@dataclass
class Execution:
    id: str
    workflow: N8nWorkflow
    started_at: datetime
    webhook_id: str
    timestamp: int
    event: dict[str, Any]
    body: str
    dropped: bool
    duplicated: bool
    send_node: str = SEND_NODE
    headers: dict[str, str] = field(default_factory=dict)
    status: ExecutionStatus = "running"
    stopped_at: datetime | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(a.status is not None and 200 <= a.status < 300 for a in self.attempts)

    @property
    def int_id(self) -> int:
        return int(self.id)


class N8nData:
    """The simulated instance: workflows, executions, clock; every change under one lock."""

    def __init__(self, seed: int, settings: N8nSettings | None = None):
        self.settings = settings or N8nSettings()
        self.seed = seed
        self.rng = random.Random(f"n8n:{seed}")
        self.lock = threading.RLock()
        self.workflows = {w.key: w for w in self.settings.workflows}
        self.by_id = {w.id: w for w in self.settings.workflows}
        self._executions: dict[int, Execution] = {}
        self._next_id = 1
        self._sequence: dict[str, int] = {}
        self._clock_offset = timedelta()

    # -- clock and retention ---------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self._clock_offset += timedelta(seconds=seconds)
            return self.now()

    def prune(self) -> list[str]:
        """Delete executions past the retention age or count, as n8n's pruning does."""
        with self.lock:
            cutoff = self.now() - timedelta(days=self.settings.retention_days)
            gone = [
                i
                for i, e in self._executions.items()
                if e.stopped_at is not None and e.stopped_at < cutoff
            ]
            if self.settings.max_count:
                finished = sorted(i for i, e in self._executions.items() if e.stopped_at)
                gone += finished[: max(0, len(finished) - self.settings.max_count)]
            for execution_id in set(gone):
                del self._executions[execution_id]
            return sorted({str(i) for i in gone}, key=int)

    def executions(self) -> list[Execution]:
        """Every execution still kept, newest first."""
        with self.lock:
            self.prune()
            return [self._executions[i] for i in sorted(self._executions, reverse=True)]

    def execution(self, execution_id: str) -> Execution | None:
        if not execution_id.isdigit():
            return None
        with self.lock:
            self.prune()
            return self._executions.get(int(execution_id))

    # -- running workflows -----------------------------------------------------------------

    def workflow(self, key: str) -> N8nWorkflow:
        try:
            return self.workflows[key]
        except KeyError:
            raise KeyError(f"no simulated n8n workflow {key!r}") from None

    def _start(self, workflow: N8nWorkflow, rng: random.Random, plan: SendRequest) -> Execution:
        with self.lock:
            execution_id = str(self._next_id)
            self._next_id += 1
            sequence = self._sequence.get(workflow.key, 0) + 1
            self._sequence[workflow.key] = sequence
            started = self.now()
            event = make_event(workflow, rng, sequence, started)
            dropped = rng.random() < plan.drop_rate
            duplicated = not dropped and rng.random() < plan.duplicate_rate
            execution = Execution(
                id=execution_id,
                workflow=workflow,
                started_at=started,
                webhook_id=f"n8n-{workflow.id}-{execution_id}",
                timestamp=int(time.time()),
                event=event,
                body=json.dumps(event, separators=(",", ":"), ensure_ascii=False),
                dropped=dropped,
                duplicated=duplicated,
                send_node=plan.send_node or SEND_NODE,
            )
            execution.headers = _request_headers(workflow, execution)
            self._executions[execution.int_id] = execution
            return execution

    def planned_workflow(self, plan: SendRequest) -> N8nWorkflow:
        """The workflow as this send runs it (its overrides applied); ValueError for a
        `send_node` that n8n would refuse, before any execution starts."""
        workflow = self.workflow(plan.workflow_key)
        if plan.auth or plan.secret or plan.header_name:
            workflow = workflow.model_copy(
                update={
                    "auth": plan.auth or workflow.auth,
                    "secret": plan.secret or workflow.secret,
                    "header_name": plan.header_name or workflow.header_name,
                }
            )
        # n8n keeps node names unique within a workflow.
        if plan.send_node is not None and plan.send_node in _node_names(workflow)[:-1]:
            raise ValueError(
                f"send_node {plan.send_node!r} is already another node of {workflow.key}"
            )
        return workflow

    async def send(self, plan: SendRequest) -> SendReport:
        """Run `plan.count` executions, deliver their webhooks, and report what happened."""
        workflow = self.planned_workflow(plan)
        rng = (
            random.Random(f"n8n-send:{plan.seed}:{workflow.key}")
            if plan.seed is not None
            else self.rng
        )
        executions = [self._start(workflow, rng, plan) for _ in range(plan.count)]
        url = plan.target.rstrip("/") + WEBHOOK_PATH.format(key=workflow.key)
        limit = asyncio.Semaphore(plan.concurrency)
        tries = plan.max_tries or self.settings.max_tries
        wait = (
            plan.wait_between_tries_ms
            if plan.wait_between_tries_ms is not None
            else self.settings.wait_between_tries_ms
        ) / 1000

        async with httpx.AsyncClient(timeout=plan.timeout_seconds) as client:

            async def run(execution: Execution) -> None:
                async with limit:
                    if plan.delay_ms:
                        await asyncio.sleep(plan.delay_ms / 1000)
                    if not execution.dropped:
                        sends = 2 if execution.duplicated else 1
                        for _ in range(sends):
                            await self._deliver(client, url, execution, tries, wait)
                    self._finish(execution)

            await asyncio.gather(*(run(execution) for execution in executions))

        responses: dict[str, int] = {}
        for execution in executions:
            for attempt in execution.attempts:
                name = str(attempt.status) if attempt.status is not None else "error"
                responses[name] = responses.get(name, 0) + 1
        ids = [e.id for e in executions]
        return SendReport(
            workflow_key=workflow.key,
            workflow_id=workflow.id or "",
            executions=ids,
            delivered=[e.id for e in executions if e.delivered],
            dropped=[e.id for e in executions if e.dropped],
            duplicated=[e.id for e in executions if e.duplicated],
            failed=[e.id for e in executions if not e.dropped and not e.delivered],
            requests=sum(len(e.attempts) for e in executions),
            responses=dict(sorted(responses.items())),
        )

    def send_sync(self, plan: SendRequest) -> SendReport:
        """`send` for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.send(plan))

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        url: str,
        execution: Execution,
        tries: int,
        wait: float,
    ) -> None:
        """One run of the HTTP Request node, with its fixed-interval retries. Like n8n, a retry
        sends the node's input again: the same headers, signature and timestamp."""
        body = execution.body.encode()
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
            try:
                response = await client.post(url, content=body, headers=execution.headers)
            except httpx.HTTPError as exc:
                execution.attempts.append(Attempt(None, f"{exc.__class__.__name__}: {exc}"))
                continue
            try:
                answer: Any = response.json()
            except ValueError:
                answer = response.text[:500]
            execution.attempts.append(Attempt(response.status_code, body=answer))
            if response.is_success:
                return

    def _finish(self, execution: Execution) -> None:
        with self.lock:
            execution.stopped_at = self.now()
            failed = not execution.dropped and not execution.delivered
            execution.status = (
                "error" if failed and not self.settings.continue_on_fail else "success"
            )

    # -- the API's view ---------------------------------------------------------------------

    def summary(self, execution: Execution, include_data: bool) -> dict[str, Any]:
        """An execution as n8n's public API returns it."""
        summary: dict[str, Any] = {
            "id": execution.id,
            "finished": execution.status == "success",
            "mode": "webhook",
            "retryOf": None,
            "retrySuccessId": None,
            "status": execution.status,
            "createdAt": iso_ms(execution.started_at),
            "startedAt": iso_ms(execution.started_at),
            "stoppedAt": iso_ms(execution.stopped_at) if execution.stopped_at else None,
            "deletedAt": None,
            "workflowId": execution.workflow.id,
            "waitTill": None,
            "customData": {},
        }
        if include_data:
            summary["data"] = run_data(execution)
            summary["workflowData"] = workflow_data(execution.workflow, execution.send_node)
        return summary

    def environment(self) -> dict[str, str]:
        """What the platform needs to receive these workflows and list their executions
        (N8N_BASE_URL is added by `simulator_environment`, which knows the address)."""
        env = {N8N_API_KEY_ENV: self.settings.api_key}
        for workflow in self.settings.workflows:
            name = workflow.key.upper()
            env[N8N_WEBHOOK_SECRET_PREFIX + name] = workflow.secret or ""
            env[N8N_WORKFLOW_ID_PREFIX + name] = workflow.id or ""
        return env


# -- payloads and execution data ------------------------------------------------------------


def _request_headers(workflow: N8nWorkflow, execution: Execution) -> dict[str, str]:
    """The headers the "Send to warehouse" node sends, signed once when the execution runs."""
    headers = {
        "Content-Type": "application/json",
        "X-N8N-Execution-Id": execution.id,
        "User-Agent": "n8n",
    }
    if workflow.auth == "standard_webhooks":
        return headers | signed_headers(
            workflow.secret or "",
            execution.webhook_id,
            execution.timestamp,
            execution.body.encode(),
        )
    return headers | {
        "webhook-id": execution.webhook_id,
        workflow.header_name: workflow.secret or "",
    }


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
    """The event one execution of this workflow sends; `eventId` is unique per execution."""
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


TRIGGERS = {
    "form_submission": ("On form submission", "n8n-nodes-base.formTrigger"),
    "new_lead": ("CRM webhook", "n8n-nodes-base.webhook"),
    "order_update": ("Shop webhook", "n8n-nodes-base.webhook"),
}


def _node_names(workflow: N8nWorkflow, send_node: str = SEND_NODE) -> list[str]:
    trigger = TRIGGERS[workflow.kind or "form_submission"][0]
    middle = [SIGN_NODE] if workflow.auth == "standard_webhooks" else []
    return [trigger, PAYLOAD_NODE, *middle, send_node]


def workflow_data(workflow: N8nWorkflow, send_node: str = SEND_NODE) -> dict[str, Any]:
    """The workflow as n8n stores it with an execution (nodes and connections); `send_node`
    is the HTTP node's name as it was when that execution ran."""
    trigger_name, trigger_type = TRIGGERS[workflow.kind or "form_submission"]
    send_headers = [
        {"name": "webhook-id", "value": "={{ $json.webhookId }}"},
        {"name": "X-N8N-Execution-Id", "value": "={{ $execution.id }}"},
    ]
    if workflow.auth == "standard_webhooks":
        send_headers += [
            {"name": "webhook-timestamp", "value": "={{ $json.timestamp }}"},
            {"name": "webhook-signature", "value": "=v1,{{ $json.signature }}"},
        ]
    nodes = [
        {"name": trigger_name, "type": trigger_type, "typeVersion": 2, "parameters": {}},
        {
            "name": PAYLOAD_NODE,
            "type": "n8n-nodes-base.code",
            "typeVersion": 2,
            "parameters": {
                "jsCode": "const event = { ...$json };\n"
                "return [{ json: { webhookId: `n8n-${$workflow.id}-${$execution.id}`,\n"
                "  timestamp: Math.floor(Date.now() / 1000), body: JSON.stringify(event) } }];"
            },
        },
    ]
    if workflow.auth == "standard_webhooks":
        nodes.append(
            {
                "name": SIGN_NODE,
                "type": "n8n-nodes-base.crypto",
                "typeVersion": 1,
                "parameters": {
                    "action": "hmac",
                    "type": "SHA256",
                    "value": "={{ $json.webhookId }}.{{ $json.timestamp }}.{{ $json.body }}",
                    "dataPropertyName": "signature",
                    "encoding": "base64",
                },
            }
        )
    nodes.append(
        {
            "name": send_node,
            "type": "n8n-nodes-base.httpRequest",
            "typeVersion": 4.2,
            "retryOnFail": True,
            "onError": "continueRegularOutput",
            "parameters": {
                "method": "POST",
                "url": f"={{{{ $env.WAREHOUSE_RECEIVER_URL }}}}/webhooks/n8n/{workflow.key}",
                "sendHeaders": True,
                "headerParameters": {"parameters": send_headers},
                "sendBody": True,
                "contentType": "raw",
                "rawContentType": "application/json",
                "body": "={{ $json.body }}",
            },
        }
    )
    names = _node_names(workflow, send_node)
    connections = {
        a: {"main": [[{"node": b, "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(names)
    }
    return {
        "id": workflow.id,
        "name": workflow.name,
        "active": True,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
    }


def _task(start_ms: int, index: int, previous: str | None, items: list[dict[str, Any]]):
    return {
        "hints": [],
        "startTime": start_ms,
        "executionIndex": index,
        "executionTime": 1 + index,
        "executionStatus": "success",
        "source": [{"previousNode": previous}] if previous else [],
        "data": {
            "main": [[{"json": item, "pairedItem": {"item": 0}} for item in items]],
        },
    }


def run_data(execution: Execution) -> dict[str, Any]:
    """`data` of an execution as n8n's API returns it with includeData=true."""
    workflow = execution.workflow
    names = _node_names(workflow, execution.send_node)
    start_ms = int(execution.started_at.timestamp() * 1000)
    item = {
        "webhookId": execution.webhook_id,
        "timestamp": execution.timestamp,
        "body": execution.body,
    }
    outputs: list[dict[str, Any]] = [execution.event, item]
    if workflow.auth == "standard_webhooks":
        signature = signed_headers(
            workflow.secret or "",
            execution.webhook_id,
            execution.timestamp,
            execution.body.encode(),
        )["webhook-signature"].removeprefix("v1,")
        outputs.append(item | {"signature": signature})
    last = execution.attempts[-1] if execution.attempts else None
    if execution.dropped:
        sent: dict[str, Any] = {"error": "socket hang up"}
    elif last is None:
        sent = {}
    elif last.status is not None and 200 <= last.status < 300:
        sent = last.body if isinstance(last.body, dict) else {"data": last.body}
    else:
        sent = {"error": last.error or f"Request failed with status code {last.status}"}
    outputs.append(sent)
    run = {
        name: [_task(start_ms + i, i, names[i - 1] if i else None, [output])]
        for i, (name, output) in enumerate(zip(names, outputs, strict=True))
    }
    return {
        "startData": {},
        "resultData": {"runData": run, "pinData": {}, "lastNodeExecuted": execution.send_node},
        "executionData": {
            "contextData": {},
            "nodeExecutionStack": [],
            "metadata": {},
            "waitingExecution": {},
            "waitingExecutionSource": {},
        },
    }


# -- the n8n public API -----------------------------------------------------------------------


def n8n_data(request: Request) -> N8nData:
    """FastAPI dependency: the n8n instance of the simulator serving this request."""
    return request.app.state.simulator.n8n


N8n = Annotated[N8nData, Depends(n8n_data)]
ApiKey = Annotated[str | None, Header(alias="X-N8N-API-KEY")]
router = APIRouter(prefix=API_PREFIX)


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def _refused(n8n: N8nData, api_key: str | None) -> JSONResponse | None:
    if api_key is None:
        return _message(401, "'X-N8N-API-KEY' header required")
    if api_key != n8n.settings.api_key:
        return _message(401, "unauthorized")
    return None


def _flag(text: str | None) -> bool | None:
    if text is None:
        return False
    return {"true": True, "false": False}.get(text.lower())


def _decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        decoded = json.loads(base64.b64decode(cursor, validate=True))
        last_id, limit = int(decoded["lastId"]), int(decoded["limit"])
    except (ValueError, KeyError, TypeError):
        return None
    return (last_id, limit) if limit >= 1 else None


def encode_cursor(last_id: str, limit: int) -> str:
    return base64.b64encode(json.dumps({"lastId": last_id, "limit": limit}).encode()).decode()


@router.get("/executions")
def list_executions(
    n8n: N8n,
    api_key: ApiKey = None,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    status: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
    include_data: Annotated[str | None, Query(alias="includeData")] = None,
) -> JSONResponse:
    """Newest first; running executions left out; at most 250 per page."""
    if refused := _refused(n8n, api_key):
        return refused
    page = DEFAULT_PAGE
    if limit is not None:
        if not limit.isdigit():
            return _message(400, "request/query/limit must be number")
        page = int(limit)
        if page > MAX_PAGE:
            return _message(400, f"request/query/limit must be <= {MAX_PAGE}")
        if page < 1:
            return _message(400, "request/query/limit must be >= 1")
    last_id: int | None = None
    if cursor:
        decoded = _decode_cursor(cursor)
        if decoded is None:
            return _message(400, "An invalid cursor was provided")
        last_id, page = decoded[0], min(decoded[1], MAX_PAGE)
    if status is not None and status not in (
        "canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting"
    ):  # fmt: skip
        return _message(400, "request/query/status must be equal to one of the allowed values")
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean")
    rows = [
        e
        for e in n8n.executions()
        if e.status != "running"
        and (workflow_id is None or e.workflow.id == workflow_id)
        and (status is None or e.status == status)
        and (last_id is None or e.int_id < last_id)
    ]
    taken = rows[:page]
    next_cursor = encode_cursor(taken[-1].id, page) if len(rows) > page else None
    with n8n.lock:
        data = [n8n.summary(e, with_data) for e in taken]
    return JSONResponse({"data": data, "nextCursor": next_cursor})


@router.get("/executions/{execution_id}")
def get_execution(
    execution_id: str,
    n8n: N8n,
    api_key: ApiKey = None,
    include_data: Annotated[str | None, Query(alias="includeData")] = None,
) -> JSONResponse:
    if refused := _refused(n8n, api_key):
        return refused
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean")
    execution = n8n.execution(execution_id)
    if execution is None:
        return _message(404, "Not Found")
    with n8n.lock:
        return JSONResponse(n8n.summary(execution, with_data))


@router.get("/workflows")
def list_workflows(n8n: N8n, api_key: ApiKey = None) -> JSONResponse:
    if refused := _refused(n8n, api_key):
        return refused
    data = [
        {
            "id": w.id,
            "name": w.name,
            "active": True,
            "isArchived": False,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "tags": [{"id": "sync", "name": "warehouse"}],
        }
        for w in n8n.settings.workflows
    ]
    return JSONResponse({"data": data, "nextCursor": None})


# -- n8n's part of the control API ----------------------------------------------------------

control_router = APIRouter(prefix="/_sim/n8n")


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


@control_router.post("/send")
async def send(plan: SendRequest, n8n: N8n) -> SendReport:
    """Run executions of one workflow and deliver their webhooks to `target`."""
    if plan.workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {plan.workflow_key!r}")
    try:
        n8n.planned_workflow(plan)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    return await n8n.send(plan)


@control_router.get("/executions")
def executions(n8n: N8n) -> list[dict[str, Any]]:
    """Every kept execution, newest first, with what happened to its webhook."""
    with n8n.lock:
        return [
            {
                "id": e.id,
                "workflow_key": e.workflow.key,
                "workflow_id": e.workflow.id,
                "status": e.status,
                "webhook_id": e.webhook_id,
                "started_at": iso_ms(e.started_at),
                "delivered": e.delivered,
                "dropped": e.dropped,
                "duplicated": e.duplicated,
                "send_node": e.send_node,
                "attempts": [a.status if a.status is not None else a.error for a in e.attempts],
                "event": e.event,
            }
            for e in n8n.executions()
        ]


@control_router.post("/clock")
def advance_clock(advance: ClockAdvance, n8n: N8n) -> dict[str, Any]:
    """Move n8n's clock forward; executions past the retention are pruned."""
    now = n8n.advance(advance.advance_seconds)
    return {"now": iso_ms(now), "pruned": n8n.prune()}


@control_router.get("/environment")
def environment(n8n: N8n) -> dict[str, str]:
    """The platform's n8n variables for this simulator (secrets, workflow ids, API key)."""
    return n8n.environment()


@control_router.post("/reset")
def reset_n8n(request: Request, settings: N8nSettings | None = None) -> dict[str, Any]:
    """Forget every execution and start again from the simulator seed (and new settings)."""
    state = request.app.state.simulator
    settings = settings or N8nSettings()
    state.n8n = N8nData(state.seed, settings)
    state.settings.n8n = settings.model_copy(deep=True)
    return {"workflows": {w.key: w.id for w in settings.workflows}}
