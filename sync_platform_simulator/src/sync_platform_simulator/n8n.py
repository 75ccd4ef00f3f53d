"""An n8n instance, simulated: workflows that SEND signed webhooks to the receiver, and the
n8n public API that lists what they ran.

Written from n8n's documentation and source (n8n-io/n8n), never from the platform's client:
- the public API's executions handler (packages/cli/src/public-api/v1/handlers/executions/
  executions.handler.ts, its spec spec/paths/executions.yml and spec/schemas/execution.yml),
  the cursor encoding (packages/cli/src/public-api/v1/shared/services/pagination.service.ts),
  the status filter (`error` means error or crashed, ExecutionRepository);
- the run data (IRunExecutionData, ITaskData, ISourceData in packages/workflow/src/
  Interfaces.ts), node errors (packages/workflow/src/errors/node-api.error.ts), the retries of
  a node with "Retry On Fail" (packages/core WorkflowExecute: with "On Error: Continue" the
  WHOLE node runs again, every item resent, as long as its first output item is an error);
- pruning (ExecutionsConfig in packages/@n8n/config: EXECUTIONS_DATA_MAX_AGE 336 h,
  EXECUTIONS_DATA_PRUNE_MAX_COUNT 10,000; ExecutionRepository.softDeletePrunableExecutions);
- the public API's optional rate limit (docs.n8n.io/connect/n8n-api/rate-limits: n8n 2.47+,
  off by default, per API key, 429 with Retry-After and X-RateLimit-* headers).

Sending (`POST /_sim/n8n/send`, or `N8nData.send` / `send_sync` in Python): `count` workflow
executions, each sending one webhook per item to `<target>/webhooks/n8n/<key>`, signed as the
workflow is configured (Standard Webhooks HMAC, or a shared-secret header), with a
`webhook-id` (the delivery id) and `X-N8N-Execution-Id`. A workflow is built one of three ways
(`N8nWorkflow.build`, or a send's `build` override):
- "convention": one item per execution; the node "Build payload" outputs `{webhookId,
  timestamp, body}` (body: the exact JSON text sent), "Sign" adds the signature (signed
  workflows), the HTTP node "Send to warehouse" sends `body` raw; delivery id
  `n8n-<workflowId>-<executionId>`;
- "build_node": "Build payload" outputs the payload itself (the item's `json` IS the body, sent
  as n8n's JSON.stringify writes it) and the HTTP node (default name "HTTP Request") sends
  each item's json with `webhook-id: n8n-<executionId>-<itemIndex>`;
- "multi_item": as build_node, several items per execution (`items`: a count or a range),
  each its own delivery, each drawn for drops and duplicates on its own.
Like an HTTP Request node with "Retry On Fail", a failed request is tried again a few times at
a fixed interval (a multi-item node runs again as a whole, as n8n does); with "On Error:
Continue" (the default here) the execution still ends `success` when every try failed.
Faults per send:
- `drop_rate` (per item): n8n is done with it, but the request never arrives (lost on the
  way; never retried);
- `duplicate_rate` (per item): the webhook arrives twice (same webhook-id and body);
- `delay_ms`: each execution waits this long before it sends (arrivals interleave);
- `error_before_send_rate`: the execution fails in "Build payload" (status `error`, the send
  node absent from its run data, nothing sent);
- `error_in_send_rate`: the execution fails in its send node before any request left (status
  `error`, the node's task has an `error`, nothing received).
What each delivery id became is in the send's report (`deliveries`) and, for everything run
since the last reset (pruned executions included), in `GET /_sim/n8n/deliveries`.

The public API under `/n8n/api/v1` (header `X-N8N-API-KEY`), shaped as n8n 1.x serves it:
- `GET /executions?workflowId=&status=&limit=&cursor=&includeData=`: newest first, pages of
  at most 250 (default 100), `{"data": [...], "nextCursor": <base64 of JSON.stringify({lastId,
  limit})> | null}`; running executions are left out unless `status=running`, as n8n does;
- `GET /executions/{id}?includeData=true`: one execution; with data, its run data
  (`data.resultData.runData`) and `workflowData` (nodes, connections);
- `GET /workflows`: the workflows, with their ids.
Errors are n8n's `{"message": ...}`. Executions whose `stoppedAt` is older than
`retention_days` (default 14, n8n's EXECUTIONS_DATA_MAX_AGE of 336 h) on the simulated clock,
or beyond the newest `max_count` (n8n's EXECUTIONS_DATA_PRUNE_MAX_COUNT, 10,000), are pruned:
absent from lists, 404 by id. The clock is real time plus an offset that
`POST /_sim/n8n/clock` moves forward (signatures use real time, as the receiver checks them).
`POST /_sim/n8n/prune` prunes chosen executions now, or right after the next list is served
(n8n's pruning running between a client's list and its fetch). `rate_limit` (settings, or
`POST /_sim/n8n/rate-limit`) turns on n8n's per-key read limit.

Where a delivery's payload lives in an execution (what the gap resync extracts):
- convention: the item that entered the send node — the first output item of the node named in
  `runData[<send node>][0].source[0].previousNode` — carries `webhookId`, `timestamp` and
  `body`, the exact JSON text that was (or should have been) sent;
- build_node / multi_item: item i of "Build payload" (`runData["Build payload"][0].data.main
  [0][i].json`) is the body of delivery `n8n-<executionId>-<i>`.
A send's `send_node` names the HTTP node differently in its executions only (a node renamed in
n8n between runs), so the gap resync cannot find their payload. Reference: docs/sources/n8n.md.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import itertools
import json
import math
import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
HTTP_NODE = "HTTP Request"  # n8n's default name for an HTTP Request node
MAX_NODE_NAME = 128  # our bound for a node name sent in a request, not one n8n documents
MAX_ITEMS = 100  # our bound for items per execution
PAYLOAD_NODE = "Build payload"
SIGN_NODE = "Sign"
WORKFLOW_KINDS = ("form_submission", "new_lead", "order_update")
ExecutionStatus = Literal["success", "error", "running"]
AuthMode = Literal["standard_webhooks", "header"]
BuildMode = Literal["convention", "build_node", "multi_item"]
Failure = Literal["before_send", "in_send"]
NodeName = Annotated[str, Field(min_length=1, max_length=MAX_NODE_NAME, pattern=r"\S")]
ItemCount = int | tuple[int, int]
DELIVERY_ID_FIELDS = ("workflow_id", "execution_id", "item_index")
DEFAULT_DELIVERY_ID: dict[str, str] = {
    "convention": "n8n-{workflow_id}-{execution_id}",
    "build_node": "n8n-{execution_id}-{item_index}",
    "multi_item": "n8n-{execution_id}-{item_index}",
}
DEFAULT_ITEMS: dict[str, int] = {"convention": 1, "build_node": 1, "multi_item": 3}
# The statuses n8n's `status` filter accepts (spec/paths/executions.yml), and what each
# matches: n8n's ExecutionRepository widens `error` to error and crashed.
STATUS_FILTER = ("canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting")
STATUS_MATCHES = {"error": ("error", "crashed")}
# n8n's messages for a request that failed (packages/workflow/src/errors: node.error.ts
# COMMON_ERRORS and node-api.error.ts STATUS_CODE_MESSAGES).
ECONNREFUSED_MESSAGE = "The service refused the connection - perhaps it is offline"
ENOTFOUND_MESSAGE = (
    "The connection cannot be established, this usually occurs due to an incorrect host(domain) "
    "value"
)
STATUS_CODE_MESSAGES = {
    "4XX": "Your request is invalid or could not be processed by the service",
    "400": "Bad request - please check your parameters",
    "401": "Authorization failed - please check your credentials",
    "403": "Forbidden - perhaps check your credentials?",
    "404": "The resource you are requesting could not be found",
    "429": "The service is receiving too many requests from you",
    "5XX": "The service failed to process your request",
    "500": "The service was not able to process your request",
    "502": "Bad gateway - the service failed to handle your request",
    "503": "Service unavailable - try again later or consider setting this node to retry "
    "automatically (in the node settings)",
    "504": "Gateway timed out - perhaps try again later?",
}

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


def js_normalized(value: Any) -> Any:
    """`value` as JavaScript holds it: a whole float is a number without a fraction (45.0 is
    45), so JSON written from it matches JSON.stringify."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: js_normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_normalized(v) for v in value]
    return value


def js_json(value: Any) -> str:
    """JSON.stringify(value): no spaces, keys in order, non-ASCII kept as is."""
    return json.dumps(js_normalized(value), separators=(",", ":"), ensure_ascii=False)


def item_range(items: ItemCount) -> tuple[int, int]:
    low, high = (items, items) if isinstance(items, int) else items
    if not 1 <= low <= high <= MAX_ITEMS:
        raise ValueError(f"items must be a count or a [min, max] range within 1..{MAX_ITEMS}")
    return low, high


class N8nWorkflow(BaseModel):
    """A workflow the simulated n8n runs: which webhook it sends, how it builds and signs it."""

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
    build: BuildMode = Field(
        default="convention",
        description="convention: the item entering the send node carries webhookId and body; "
        "build_node: the payload node's item json IS the body; multi_item: build_node with "
        "several items per execution",
    )
    payload_node: NodeName = Field(default=PAYLOAD_NODE, description="the node building it")
    send_node: NodeName | None = Field(
        default=None, description="the HTTP node; None: 'Send to warehouse' (convention) or "
        "'HTTP Request' (build_node, multi_item)",
    )  # fmt: skip
    items: ItemCount | None = Field(
        default=None,
        description="multi_item: items per execution, a count or an inclusive [min, max] "
        "range drawn per execution; None: 3. Always 1 for the other builds",
    )
    delivery_id: str | None = Field(
        default=None,
        max_length=200,
        description="the webhook-id template, with {workflow_id}, {execution_id} and "
        "{item_index}; None: n8n-{workflow_id}-{execution_id} (convention) or "
        "n8n-{execution_id}-{item_index}",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> N8nWorkflow:
        if self.kind is None:
            if self.key not in WORKFLOW_KINDS:
                raise ValueError(f"kind is required for workflow {self.key!r}")
            self.kind = self.key  # type: ignore[assignment]
        self.id = self.id or default_workflow_id(self.key)
        self.name = self.name or self.key.replace("_", " ").capitalize() + " → warehouse"
        self.secret = self.secret or default_secret(self.key, self.auth)
        if self.items is not None:
            item_range(self.items)
            if self.build != "multi_item" and item_range(self.items) != (1, 1):
                raise ValueError(f"a {self.build} workflow sends one item per execution")
        template = self.delivery_id_template
        try:
            template.format(workflow_id="w", execution_id="1", item_index=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"delivery_id {template!r}: only {{workflow_id}}, {{execution_id}} and "
                "{item_index} may be used"
            ) from exc
        if "{execution_id}" not in template:
            raise ValueError("delivery_id must contain {execution_id}")
        if self.build == "multi_item" and "{item_index}" not in template:
            raise ValueError("a multi_item workflow's delivery_id must contain {item_index}")
        names = node_names(self)
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique within a workflow: {names}")
        return self

    @property
    def send_node_name(self) -> str:
        return self.send_node or (SEND_NODE if self.build == "convention" else HTTP_NODE)

    @property
    def item_range(self) -> tuple[int, int]:
        return item_range(self.items if self.items is not None else DEFAULT_ITEMS[self.build])

    @property
    def delivery_id_template(self) -> str:
        return self.delivery_id or DEFAULT_DELIVERY_ID[self.build]


def _default_workflows() -> list[N8nWorkflow]:
    return [
        N8nWorkflow(key="form_submission"),
        N8nWorkflow(key="new_lead"),
        N8nWorkflow(key="order_update", auth="header"),
    ]


class ApiRateLimit(BaseModel):
    """n8n's public-API rate limit for reads (GET), counted per API key in a fixed window."""

    model_config = ConfigDict(extra="forbid")

    read_limit: int = Field(ge=1, description="GET requests per key per window")
    window_seconds: float = Field(default=60, gt=0, le=86_400)


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
    rate_limit: ApiRateLimit | None = Field(
        default=None, description="None: off, n8n's default (rate limiting is opt-in)"
    )


class SendRequest(BaseModel):
    """The body of `POST /_sim/n8n/send`: run `count` executions of one workflow."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="the receiver's base URL, e.g. http://127.0.0.1:8780")
    workflow_key: str
    count: int = Field(default=1, ge=0, le=100_000)
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    error_before_send_rate: float = Field(
        default=0.0, ge=0, le=1, description="executions failing in the payload node"
    )
    error_in_send_rate: float = Field(
        default=0.0, ge=0, le=1, description="executions failing in the send node, unsent"
    )
    delay_ms: int = Field(default=0, ge=0, le=60_000)
    seed: int | None = Field(default=None, description="None: continue the simulator's RNG")
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    auth: AuthMode | None = Field(default=None, description="override the workflow's")
    secret: str | None = Field(default=None, description="override the workflow's")
    header_name: str | None = None
    build: BuildMode | None = Field(default=None, description="override the workflow's")
    items: ItemCount | None = Field(default=None, description="override the workflow's")
    max_tries: int | None = Field(default=None, ge=1, le=5)
    wait_between_tries_ms: int | None = Field(default=None, ge=0, le=5000)
    send_node: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NODE_NAME,
        pattern=r"\S",
        description="None: the workflow's send node. The HTTP node's name in these "
        "executions only (renamed in n8n): the gap resync cannot find their payload",
    )

    @model_validator(mode="after")
    def _errors_fit_in_one_draw(self) -> SendRequest:
        if self.error_before_send_rate + self.error_in_send_rate > 1 + 1e-9:
            raise ValueError("error_before_send_rate + error_in_send_rate is more than 1")
        return self


class DeliveryOutcomes(BaseModel):
    """What became of each delivery id (one per item an execution built), in execution order.

    `ids` = delivered + dropped + failed + not_sent + pending (a partition); `sent` and
    `duplicated` are further views. An execution that failed before its send node built no
    item, so it has no delivery id here (see `errored_before_send`)."""

    ids: list[str] = Field(default_factory=list, description="every delivery id built")
    sent: list[str] = Field(
        default_factory=list, description="at least one request reached the receiver"
    )
    delivered: list[str] = Field(default_factory=list, description="answered 2xx at least once")
    dropped: list[str] = Field(
        default_factory=list, description="lost on the way: never reached the receiver"
    )
    duplicated: list[str] = Field(default_factory=list, description="sent twice (dup draw)")
    failed: list[str] = Field(
        default_factory=list, description="sent, never answered 2xx (every try failed)"
    )
    not_sent: list[str] = Field(
        default_factory=list, description="its execution failed in the send node: no request"
    )
    pending: list[str] = Field(default_factory=list, description="its execution still runs")


class SendReport(BaseModel):
    workflow_key: str
    workflow_id: str
    build: BuildMode
    executions: list[str]
    delivered: list[str] = Field(description="executions with an item answered 2xx")
    dropped: list[str] = Field(description="executions with an item lost on the way")
    duplicated: list[str] = Field(description="executions with an item that arrived twice")
    failed: list[str] = Field(
        description="executions with a sent item never answered 2xx (every try failed)"
    )
    errored_before_send: list[str] = Field(
        default_factory=list, description="failed before the send node ran: nothing sent"
    )
    errored_in_send: list[str] = Field(
        default_factory=list, description="failed in the send node: no request left n8n"
    )
    deliveries: DeliveryOutcomes = Field(default_factory=DeliveryOutcomes)
    requests: int
    responses: dict[str, int] = Field(description="HTTP status (or 'error') → count")


class PruneRequest(BaseModel):
    """The body of `POST /_sim/n8n/prune`. Neither ids nor oldest: n8n's retention pruning."""

    model_config = ConfigDict(extra="forbid")

    execution_ids: list[str] | None = Field(default=None, description="prune these")
    oldest: int | None = Field(default=None, ge=1, description="prune the N oldest finished")
    workflow_key: str | None = Field(
        default=None,
        description="oldest: of this workflow only; after_next_list: after the next list of "
        "this workflow's executions",
    )
    when: Literal["now", "after_next_list"] = Field(
        default="now",
        description="after_next_list: right after the next GET /executions is answered",
    )

    @model_validator(mode="after")
    def _one_choice(self) -> PruneRequest:
        if self.execution_ids is not None and self.oldest is not None:
            raise ValueError("give execution_ids or oldest, not both")
        return self


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
        self._ledger: dict[int, Execution] = {}  # every execution run, pruned ones too
        self._pruned: dict[int, str] = {}  # execution id → why ("retention" or "control")
        self._armed_prune: PruneRequest | None = None
        self._rate_windows: dict[str, tuple[float, int]] = {}  # API key → (start, requests)
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
        """Delete executions past the retention age or count, as n8n's pruning does: finished
        ones stopped at or before now - max age, and finished ones at or below the id that
        comes after the newest `max_count` (ExecutionRepository.softDeletePrunableExecutions).
        """
        with self.lock:
            cutoff = self.now() - timedelta(days=self.settings.retention_days)
            finished = {i for i, e in self._executions.items() if e.stopped_at is not None}
            gone = {i for i in finished if self._executions[i].stopped_at <= cutoff}  # type: ignore[operator]
            newest_first = sorted(self._executions, reverse=True)
            if self.settings.max_count and len(newest_first) > self.settings.max_count:
                boundary = newest_first[self.settings.max_count]
                gone |= {i for i in finished if i <= boundary}
            return self._delete(gone, "retention")

    def _delete(self, ids: set[int], why: str) -> list[str]:
        for execution_id in ids:
            del self._executions[execution_id]
            self._pruned[execution_id] = why
        return [str(i) for i in sorted(ids)]

    def prune_chosen(self, chosen: PruneRequest) -> tuple[list[str], list[str]]:
        """Prune now what `chosen` names; (pruned ids, named ids not prunable: unknown, gone
        or still running — n8n only prunes finished executions)."""
        with self.lock:
            if chosen.execution_ids is None and chosen.oldest is None:
                return self.prune(), []
            finished = [
                i
                for i, e in sorted(self._executions.items())
                if e.stopped_at is not None
                and (chosen.workflow_key is None or e.workflow.key == chosen.workflow_key)
            ]
            if chosen.oldest is not None:
                return self._delete(set(finished[: chosen.oldest]), "control"), []
            named = chosen.execution_ids or []
            prunable = set(finished)
            ids = {int(i) for i in named if i.isdigit() and int(i) in prunable}
            skipped = [i for i in named if not i.isdigit() or int(i) not in ids]
            return self._delete(ids, "control"), skipped

    def arm_prune(self, chosen: PruneRequest) -> None:
        with self.lock:
            self._armed_prune = chosen

    def after_list(self, workflow_id: str | None) -> list[str]:
        """Run the prune armed for "after the next list", if any (once): the next list of
        its `workflow_key`'s workflow when it names one, else the next list at all."""
        with self.lock:
            armed = self._armed_prune
            if armed is None:
                return []
            if armed.workflow_key is not None and (
                workflow_id != self.workflows[armed.workflow_key].id
            ):
                return []
            self._armed_prune = None
            return self.prune_chosen(armed)[0]

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

    # -- the public API's rate limit -------------------------------------------------------

    def set_rate_limit(self, limit: ApiRateLimit | None) -> None:
        with self.lock:
            self.settings.rate_limit = limit
            self._rate_windows.clear()

    def take_read(self, api_key: str) -> tuple[bool, dict[str, str]]:
        """Count one read (GET) for this API key: (allowed, rate-limit headers). A refused
        request does not count, as n8n's docs say."""
        limit = self.settings.rate_limit
        if limit is None:
            return True, {}
        now = time.monotonic()
        with self.lock:
            start, used = self._rate_windows.get(api_key, (now, 0))
            if now - start >= limit.window_seconds:
                start, used = now, 0
            left = start + limit.window_seconds - now
            allowed = used < limit.read_limit
            used += allowed
            self._rate_windows[api_key] = (start, used)
        headers = {
            "X-RateLimit-Limit": str(limit.read_limit),
            "X-RateLimit-Remaining": str(limit.read_limit - used),
            "X-RateLimit-Reset": str(math.ceil(time.time() + left)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(left)))
        return allowed, headers

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
            started = self.now()
            low, high = workflow.item_range
            count = rng.randint(low, high) if high > low else low
            items = []
            for index in range(count):
                sequence = self._sequence.get(workflow.key, 0) + 1
                self._sequence[workflow.key] = sequence
                event = make_event(workflow, rng, sequence, started)
                dropped = rng.random() < plan.drop_rate
                duplicated = not dropped and rng.random() < plan.duplicate_rate
                if workflow.build == "convention":
                    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                else:  # the HTTP node sends the item's json, as JSON.stringify writes it
                    event = js_normalized(event)
                    body = js_json(event)
                delivery_id = workflow.delivery_id_template.format(
                    workflow_id=workflow.id, execution_id=execution_id, item_index=index
                )
                items.append(Item(index, delivery_id, event, body, dropped, duplicated))
            failure: Failure | None = None
            error_rate = plan.error_before_send_rate + plan.error_in_send_rate
            if error_rate:
                draw = rng.random()
                if draw < plan.error_before_send_rate:
                    failure = "before_send"
                elif draw < error_rate:
                    failure = "in_send"
            execution = Execution(
                id=execution_id,
                workflow=workflow,
                started_at=started,
                timestamp=int(time.time()),
                items=items,
                send_node=plan.send_node or workflow.send_node_name,
                failure=failure,
            )
            for item in items:
                if failure:  # nothing leaves n8n: no drop, no duplicate
                    item.dropped = item.duplicated = False
                item.headers = _request_headers(workflow, execution, item)
            self._executions[execution.int_id] = execution
            self._ledger[execution.int_id] = execution
            return execution

    def planned_workflow(self, plan: SendRequest) -> N8nWorkflow:
        """The workflow as this send runs it (its overrides applied); ValueError for an
        override n8n would refuse (a `send_node` named as another node), before any
        execution starts."""
        workflow = self.workflow(plan.workflow_key)
        overrides = {
            name: value
            for name, value in {
                "auth": plan.auth,
                "secret": plan.secret,
                "header_name": plan.header_name,
                "build": plan.build,
                "items": plan.items,
            }.items()
            if value is not None
        }
        if overrides:
            data = workflow.model_dump()
            if plan.build is not None and plan.items is None and plan.build != "multi_item":
                data["items"] = None
            try:
                workflow = N8nWorkflow.model_validate(data | overrides)
            except ValidationError as exc:
                problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"{workflow.key}: {problems}") from None
        # n8n keeps node names unique within a workflow.
        if plan.send_node is not None and plan.send_node in node_names(workflow)[:-1]:
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
        continue_on_fail = self.settings.continue_on_fail

        async with httpx.AsyncClient(timeout=plan.timeout_seconds) as client:

            async def run(execution: Execution) -> None:
                async with limit:
                    if plan.delay_ms:
                        await asyncio.sleep(plan.delay_ms / 1000)
                    if execution.failure is not None:
                        pass  # failed before any request left n8n
                    elif workflow.build == "convention":
                        item = execution.items[0]
                        if not item.dropped:
                            for _ in range(2 if item.duplicated else 1):
                                await self._deliver(client, url, item, tries, wait)
                    else:
                        await self._run_http_node(
                            client, url, execution, tries, wait, continue_on_fail
                        )
                    self._finish(execution, continue_on_fail)

            await asyncio.gather(*(run(execution) for execution in executions))

        return self._report(workflow, executions)

    def _report(self, workflow: N8nWorkflow, executions: list[Execution]) -> SendReport:
        responses: dict[str, int] = {}
        for execution in executions:
            for attempt in execution.attempts:
                name = str(attempt.status) if attempt.status is not None else "error"
                responses[name] = responses.get(name, 0) + 1
        return SendReport(
            workflow_key=workflow.key,
            workflow_id=workflow.id or "",
            build=workflow.build,
            executions=[e.id for e in executions],
            delivered=[e.id for e in executions if e.delivered],
            dropped=[e.id for e in executions if e.dropped],
            duplicated=[e.id for e in executions if e.duplicated],
            failed=[
                e.id
                for e in executions
                if e.failure is None and any(outcome(e, i) == "failed" for i in e.items)
            ],
            errored_before_send=[e.id for e in executions if e.failure == "before_send"],
            errored_in_send=[e.id for e in executions if e.failure == "in_send"],
            deliveries=delivery_outcomes(executions),
            requests=sum(len(e.attempts) for e in executions),
            responses=dict(sorted(responses.items())),
        )

    def send_sync(self, plan: SendRequest) -> SendReport:
        """`send` for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.send(plan))

    async def _post(self, client: httpx.AsyncClient, url: str, item: Item) -> Attempt:
        """One request for one item; its answer is remembered with the item."""
        try:
            response = await client.post(url, content=item.body.encode(), headers=item.headers)
        except httpx.HTTPError as exc:
            attempt = Attempt(None, f"{exc.__class__.__name__}: {exc}")
        else:
            try:
                answer: Any = response.json()
            except ValueError:
                answer = response.text[:500]
            attempt = Attempt(response.status_code, body=answer)
        item.attempts.append(attempt)
        return attempt

    async def _deliver(
        self, client: httpx.AsyncClient, url: str, item: Item, tries: int, wait: float
    ) -> None:
        """One run of a single-item HTTP Request node, with its fixed-interval retries. Like
        n8n, a retry sends the node's input again: the same headers, signature and timestamp."""
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
            item.seen = await self._post(client, url, item)
            if item.seen.ok:
                return

    async def _run_http_node(
        self,
        client: httpx.AsyncClient,
        url: str,
        execution: Execution,
        tries: int,
        wait: float,
        continue_on_fail: bool,
    ) -> None:
        """The HTTP Request node over all items (one request each, sent together), run again
        as a whole, every item resent, as n8n's WorkflowExecute does with Retry On Fail: with
        "On Error: Continue" while its FIRST output item is an error (a later item's failure
        is not retried), else while any item failed (the node threw). A dropped item is lost
        on every run and never makes the node run again. A duplicated item's first request
        is sent twice (the network repeated it)."""
        items = [item for item in execution.items if not item.dropped]

        async def post(item: Item, first_run: bool) -> None:
            item.seen = await self._post(client, url, item)
            if first_run and item.duplicated:
                await self._post(client, url, item)

        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
            await asyncio.gather(*(post(item, attempt == 0) for item in items))
            if continue_on_fail:
                head = execution.items[0]
                if head.dropped or _seen_ok(head):
                    return
            elif all(_seen_ok(item) for item in items):
                return

    def _finish(self, execution: Execution, continue_on_fail: bool) -> None:
        with self.lock:
            execution.stopped_at = self.now()
            if execution.failure is not None:
                execution.status = "error"
            elif continue_on_fail:
                execution.status = "success"
            elif execution.workflow.build == "convention":
                item = execution.items[0]
                execution.status = "error" if not item.dropped and not item.delivered else "success"
            else:
                sent = [item for item in execution.items if not item.dropped]
                execution.status = "success" if all(map(_seen_ok, sent)) else "error"

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

    def control_view(self, execution: Execution) -> dict[str, Any]:
        """An execution as `GET /_sim/n8n/executions` shows it (its first item at the top)."""
        return {
            "id": execution.id,
            "workflow_key": execution.workflow.key,
            "workflow_id": execution.workflow.id,
            "build": execution.workflow.build,
            "status": execution.status,
            "failure": execution.failure,
            "webhook_id": execution.webhook_id,
            "started_at": iso_ms(execution.started_at),
            "delivered": execution.delivered,
            "dropped": execution.dropped,
            "duplicated": execution.duplicated,
            "send_node": execution.send_node,
            "attempts": _attempt_list(execution.items[0]),
            "event": execution.event,
            "items": [
                {
                    "index": item.index,
                    "delivery_id": item.delivery_id,
                    "outcome": outcome(execution, item),
                    "dropped": item.dropped,
                    "duplicated": item.duplicated,
                    "attempts": _attempt_list(item),
                    "event": item.event,
                }
                for item in execution.items
            ],
        }

    def deliveries(self, workflow_key: str | None = None) -> dict[str, Any]:
        """Per workflow, everything run since the reset (pruned executions included): which
        executions errored where, and what became of every delivery id."""
        with self.lock:
            ran = [self._ledger[i] for i in sorted(self._ledger)]
            keys = [workflow_key] if workflow_key else list(self.workflows)
            result: dict[str, Any] = {}
            for key in keys:
                mine = [e for e in ran if e.workflow.key == key]
                result[key] = {
                    "workflow_id": self.workflows[key].id,
                    "executions": [e.id for e in mine],
                    "succeeded": [e.id for e in mine if e.status == "success"],
                    "errored": [e.id for e in mine if e.status == "error"],
                    "errored_before_send": [e.id for e in mine if e.failure == "before_send"],
                    "errored_in_send": [e.id for e in mine if e.failure == "in_send"],
                    "running": [e.id for e in mine if e.status == "running"],
                    "pruned": [e.id for e in mine if e.int_id in self._pruned],
                    "deliveries": delivery_outcomes(mine).model_dump(),
                    "by_delivery": {
                        item.delivery_id: {
                            "execution_id": e.id,
                            "item_index": item.index,
                            "outcome": outcome(e, item),
                            "duplicated": item.duplicated,
                            "attempts": _attempt_list(item),
                        }
                        for e in mine
                        if e.failure != "before_send"
                        for item in e.items
                    },
                }
            return result

    def environment(self) -> dict[str, str]:
        """What the platform needs to receive these workflows and list their executions
        (N8N_BASE_URL is added by `simulator_environment`, which knows the address)."""
        env = {N8N_API_KEY_ENV: self.settings.api_key}
        for workflow in self.settings.workflows:
            name = workflow.key.upper()
            env[N8N_WEBHOOK_SECRET_PREFIX + name] = workflow.secret or ""
            env[N8N_WORKFLOW_ID_PREFIX + name] = workflow.id or ""
        return env


def _seen_ok(item: Item) -> bool:
    """Whether the HTTP node's last run got a 2xx for this item."""
    return item.seen is not None and item.seen.ok


def _attempt_list(item: Item) -> list[int | str | None]:
    return [a.status if a.status is not None else a.error for a in item.attempts]


# -- payloads and execution data ------------------------------------------------------------


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


TRIGGERS = {  # convention workflows
    "form_submission": ("On form submission", "n8n-nodes-base.formTrigger"),
    "new_lead": ("CRM webhook", "n8n-nodes-base.webhook"),
    "order_update": ("Shop webhook", "n8n-nodes-base.webhook"),
}
BUILD_TRIGGERS = {  # build_node and multi_item workflows: all Webhook triggers
    "form_submission": ("Form webhook", "n8n-nodes-base.webhook"),
    "new_lead": ("CRM webhook", "n8n-nodes-base.webhook"),
    "order_update": ("Shop webhook", "n8n-nodes-base.webhook"),
}


def _trigger(workflow: N8nWorkflow) -> tuple[str, str]:
    table = TRIGGERS if workflow.build == "convention" else BUILD_TRIGGERS
    return table[workflow.kind or "form_submission"]


def node_names(workflow: N8nWorkflow, send_node: str | None = None) -> list[str]:
    """The workflow's nodes in the order they run (the send node last)."""
    send_node = send_node or workflow.send_node_name
    trigger = _trigger(workflow)[0]
    if workflow.build != "convention":
        return [trigger, workflow.payload_node, send_node]
    middle = [SIGN_NODE] if workflow.auth == "standard_webhooks" else []
    return [trigger, workflow.payload_node, *middle, send_node]


_node_names = node_names  # the name this module used before


def _n8n_template(template: str, js: bool) -> str:
    """The delivery-id template as n8n writes it: in a Code node's template literal (`js`),
    or in a parameter expression."""
    parts = {
        "workflow_id": ("${$workflow.id}", "{{ $workflow.id }}"),
        "execution_id": ("${$execution.id}", "{{ $execution.id }}"),
        "item_index": ("${$itemIndex}", "{{ $itemIndex }}"),
    }
    return template.format(**{name: pair[0 if js else 1] for name, pair in parts.items()})


def workflow_data(workflow: N8nWorkflow, send_node: str | None = None) -> dict[str, Any]:
    """The workflow as n8n stores it with an execution (nodes and connections); `send_node`
    is the HTTP node's name as it was when that execution ran."""
    send_node = send_node or workflow.send_node_name
    trigger_name, trigger_type = _trigger(workflow)
    signed = workflow.auth == "standard_webhooks"
    trigger: dict[str, Any] = {
        "name": trigger_name,
        "type": trigger_type,
        "typeVersion": 2,
        "parameters": {},
    }
    http: dict[str, Any] = {
        "name": send_node,
        "type": "n8n-nodes-base.httpRequest",
        "typeVersion": 4.2,
        "retryOnFail": True,
        "onError": "continueRegularOutput",
    }
    url = f"={{{{ $env.WAREHOUSE_RECEIVER_URL }}}}/webhooks/n8n/{workflow.key}"
    if workflow.build == "convention":
        send_headers = [
            {"name": "webhook-id", "value": "={{ $json.webhookId }}"},
            {"name": "X-N8N-Execution-Id", "value": "={{ $execution.id }}"},
        ]
        if signed:
            send_headers += [
                {"name": "webhook-timestamp", "value": "={{ $json.timestamp }}"},
                {"name": "webhook-signature", "value": "=v1,{{ $json.signature }}"},
            ]
        webhook_id = _n8n_template(workflow.delivery_id_template, js=True)
        nodes = [
            trigger,
            {
                "name": workflow.payload_node,
                "type": "n8n-nodes-base.code",
                "typeVersion": 2,
                "parameters": {
                    "jsCode": "const event = { ...$json };\n"
                    f"return [{{ json: {{ webhookId: `{webhook_id}`,\n"
                    "  timestamp: Math.floor(Date.now() / 1000), body: JSON.stringify(event) } }];"
                },
            },
        ]
        if signed:
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
        http["parameters"] = {
            "method": "POST",
            "url": url,
            "sendHeaders": True,
            "headerParameters": {"parameters": send_headers},
            "sendBody": True,
            "contentType": "raw",
            "rawContentType": "application/json",
            "body": "={{ $json.body }}",
        }
    else:
        trigger["parameters"] = {"httpMethod": "POST", "path": workflow.key}
        code = (
            "return { json: $json.body };"
            if workflow.build == "build_node"
            else "return $input.first().json.body.events.map((event) => ({ json: event }));"
        )
        mode = "runOnceForEachItem" if workflow.build == "build_node" else "runOnceForAllItems"
        nodes = [
            trigger,
            {
                "name": workflow.payload_node,
                "type": "n8n-nodes-base.code",
                "typeVersion": 2,
                "parameters": {"mode": mode, "jsCode": code},
            },
        ]
        webhook_id = "=" + _n8n_template(workflow.delivery_id_template, js=False)
        send_headers = [
            {"name": "webhook-id", "value": webhook_id},
            {"name": "X-N8N-Execution-Id", "value": "={{ $execution.id }}"},
        ]
        http["parameters"] = {
            "method": "POST",
            "url": url,
            "sendHeaders": True,
            "headerParameters": {"parameters": send_headers},
            "sendBody": True,
            "contentType": "json",
            "specifyBody": "json",
            "jsonBody": "={{ JSON.stringify($json) }}",
        }
        if signed:
            http["notes"] = (
                "webhook-timestamp and webhook-signature (Standard Webhooks over the exact body "
                "sent) are added by the simulator: n8n's expressions have no HMAC"
            )
    if workflow.auth == "header":
        http["parameters"] |= {
            "authentication": "genericCredentialType",
            "genericAuthType": "httpHeaderAuth",
        }
    nodes.append(http)
    names = node_names(workflow, send_node)
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


def _task(
    start_ms: int,
    index: int,
    previous: str | None,
    items: list[dict[str, Any]] | None = None,
    paired: list[int] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ITaskData: a node's run, with its output items (`data.main[0]`) or its `error`."""
    task: dict[str, Any] = {
        "hints": [],
        "startTime": start_ms,
        "executionIndex": index,
        "executionTime": 1 + index,
        "executionStatus": "error" if error is not None else "success",
        "source": [{"previousNode": previous}] if previous else [],
    }
    if error is not None:
        task["error"] = error
        return task
    paired = paired if paired is not None else [0] * len(items or [])
    task["data"] = {
        "main": [
            [
                {"json": item, "pairedItem": {"item": p}}
                for item, p in zip(items or [], paired, strict=True)
            ]
        ],
    }
    return task


def _node_error(
    node: dict[str, Any],
    name: str,
    message: str,
    description: str | None,
    at_ms: int,
    *,
    http_code: str | None = None,
    messages: list[str] | None = None,
    item_index: int | None = None,
) -> dict[str, Any]:
    """A node's error as n8n keeps it in the run data: the error's own fields spread, then
    message and stack (WorkflowExecute), the node it happened in included."""
    error: dict[str, Any] = {
        "level": "warning" if name == "NodeApiError" else "error",
        "tags": {},
        "description": description,
        "context": {"itemIndex": item_index} if item_index is not None else {},
        "functionality": "regular",
        "name": name,
        "timestamp": at_ms,
        "node": node,
        "messages": messages or [],
    }
    if name == "NodeApiError":
        error["httpCode"] = http_code
    error["message"] = message
    error["stack"] = f"{name}: {message}"
    return error


def _payload_error(node: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The payload node failing (a Code node reading a field the event lacks)."""
    return _node_error(
        node,
        "NodeOperationError",
        "Cannot read properties of undefined (reading 'eventId') [line 1]",
        None,
        at_ms,
        item_index=0,
    )


def _unsent_error(node: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The send node failing before any request left n8n (the host cannot be resolved)."""
    cause = "getaddrinfo ENOTFOUND warehouse-receiver.internal"
    return _node_error(
        node, "NodeApiError", ENOTFOUND_MESSAGE, cause, at_ms, messages=[cause], item_index=0
    )


def _delivery_error(node: dict[str, Any], at_ms: int, item: Item) -> dict[str, Any]:
    """The send node failing on an item's last answer (On Error: Stop Workflow)."""
    seen = item.seen or Attempt(None, "socket hang up")
    if seen.status is None:
        return _node_error(
            node, "NodeApiError", ECONNREFUSED_MESSAGE, seen.error, at_ms,
            messages=[seen.error or ""], item_index=item.index,
        )  # fmt: skip
    code = str(seen.status)
    message = STATUS_CODE_MESSAGES.get(code) or STATUS_CODE_MESSAGES.get(f"{code[0]}XX", "")
    body = seen.body if isinstance(seen.body, dict) else {}
    description = body.get("message") or body.get("reason") or None
    return _node_error(
        node, "NodeApiError", message, description, at_ms, http_code=code,
        messages=[f"Request failed with status code {code}"], item_index=item.index,
    )  # fmt: skip


def _sent_output(item: Item, last: Attempt | None) -> dict[str, Any]:
    """The HTTP node's output item for one request (On Error: Continue)."""
    if item.dropped:
        return {"error": "socket hang up"}
    if last is None:
        return {}
    if last.ok:
        return last.body if isinstance(last.body, dict) else {"data": last.body}
    return {"error": last.error or f"Request failed with status code {last.status}"}


def run_data(execution: Execution) -> dict[str, Any]:
    """`data` of an execution as n8n's API returns it with includeData=true: runData has a
    task for each node that ran, in order; a failed node's task holds the error (also in
    `resultData.error`) and the nodes after it are absent."""
    workflow = execution.workflow
    names = node_names(workflow, execution.send_node)
    nodes = {node["name"]: node for node in workflow_data(workflow, execution.send_node)["nodes"]}
    start_ms = int(execution.started_at.timestamp() * 1000)
    outputs: list[tuple[list[dict[str, Any]], list[int]]] = []
    # Makes the error of the node after the last one in `outputs`, if that node failed.
    failing: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    if workflow.build == "convention":
        only = execution.items[0]
        outputs.append(([only.event], [0]))
        item = {"webhookId": only.delivery_id, "timestamp": execution.timestamp, "body": only.body}
        if execution.failure == "before_send":
            failing = _payload_error
        else:
            outputs.append(([item], [0]))
            if workflow.auth == "standard_webhooks":
                signature = signed_headers(
                    workflow.secret or "", only.delivery_id, execution.timestamp,
                    only.body.encode(),
                )["webhook-signature"].removeprefix("v1,")  # fmt: skip
                outputs.append(([item | {"signature": signature}], [0]))
            if execution.failure == "in_send":
                failing = _unsent_error
            elif execution.status == "error":
                failing = functools.partial(_delivery_error, item=only)
            else:
                last = only.attempts[-1] if only.attempts else None
                outputs.append(([_sent_output(only, last)], [0]))
    else:
        events = [item.event for item in execution.items]
        received = events[0] if workflow.build == "build_node" else {"events": events}
        trigger = {
            "headers": {"content-type": "application/json"},
            "params": {},
            "query": {},
            "body": received,
        }
        outputs.append(([trigger], [0]))
        if execution.failure == "before_send":
            failing = _payload_error
        else:
            outputs.append((events, [0] * len(events)))  # all from the trigger's one item
            if execution.failure == "in_send":
                failing = _unsent_error
            elif execution.status == "error":
                unsent = [i for i in execution.items if not i.dropped and not _seen_ok(i)]
                failing = functools.partial(_delivery_error, item=unsent[0])
            else:
                sent = [_sent_output(item, item.seen) for item in execution.items]
                outputs.append((sent, list(range(len(sent)))))
    run: dict[str, Any] = {}
    for i, (items, paired) in enumerate(outputs):
        run[names[i]] = [_task(start_ms + i, i, names[i - 1] if i else None, items, paired)]
    result: dict[str, Any] = {}
    last_node = names[len(outputs) - 1]
    if failing is not None:
        i = len(outputs)
        last_node = names[i]
        error = failing(nodes[last_node], start_ms + i)
        run[last_node] = [_task(start_ms + i, i, names[i - 1], error=error)]
        result["error"] = error
    result |= {"runData": run, "pinData": {}, "lastNodeExecuted": last_node}
    return {
        "startData": {},
        "resultData": result,
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


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _admitted(n8n: N8nData, api_key: str | None) -> JSONResponse | dict[str, str]:
    """The refusal for this request (401, or 429 past the rate limit), else the rate-limit
    headers every answer carries. Only requests with a valid API key count, as in n8n."""
    if api_key is None:
        return _message(401, "'X-N8N-API-KEY' header required")
    if api_key != n8n.settings.api_key:
        return _message(401, "unauthorized")
    allowed, headers = n8n.take_read(api_key)
    if not allowed:
        return _message(429, "Too Many Requests", headers)
    return headers


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
    """n8n's nextCursor: Buffer.from(JSON.stringify({lastId, limit})).toString('base64')
    (pagination.service.ts), byte for byte: no spaces, lastId a string, limit a number."""
    return base64.b64encode(js_json({"lastId": last_id, "limit": limit}).encode()).decode()


def _status_matches(execution: Execution, status: str | None) -> bool:
    """n8n's list filter: running executions only when asked for, `error` includes crashed."""
    if status is None:
        return execution.status != "running"
    return execution.status in STATUS_MATCHES.get(status, (status,))


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
    """Newest first; running executions left out unless asked for; at most 250 per page."""
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
    page = DEFAULT_PAGE
    if limit is not None:
        if not limit.isdigit():
            return _message(400, "request/query/limit must be number", admitted)
        page = int(limit)
        if page > MAX_PAGE:
            return _message(400, f"request/query/limit must be <= {MAX_PAGE}", admitted)
        if page < 1:
            return _message(400, "request/query/limit must be >= 1", admitted)
    last_id: int | None = None
    if cursor:
        decoded = _decode_cursor(cursor)
        if decoded is None:
            return _message(400, "An invalid cursor was provided", admitted)
        last_id, page = decoded[0], min(decoded[1], MAX_PAGE)
    if status is not None and status not in STATUS_FILTER:
        return _message(
            400, "request/query/status must be equal to one of the allowed values", admitted
        )
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean", admitted)
    rows = [
        e
        for e in n8n.executions()
        if _status_matches(e, status)
        and (workflow_id is None or e.workflow.id == workflow_id)
        and (last_id is None or e.int_id < last_id)
    ]
    taken = rows[:page]
    next_cursor = encode_cursor(taken[-1].id, page) if len(rows) > page else None
    with n8n.lock:
        data = [n8n.summary(e, with_data) for e in taken]
    n8n.after_list(workflow_id)
    return JSONResponse({"data": data, "nextCursor": next_cursor}, headers=admitted)


@router.get("/executions/{execution_id}")
def get_execution(
    execution_id: str,
    n8n: N8n,
    api_key: ApiKey = None,
    include_data: Annotated[str | None, Query(alias="includeData")] = None,
) -> JSONResponse:
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean", admitted)
    execution = n8n.execution(execution_id)
    if execution is None:
        return _message(404, "Not Found", admitted)
    with n8n.lock:
        return JSONResponse(n8n.summary(execution, with_data), headers=admitted)


@router.get("/workflows")
def list_workflows(n8n: N8n, api_key: ApiKey = None) -> JSONResponse:
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
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
    return JSONResponse({"data": data, "nextCursor": None}, headers=admitted)


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
    """Every kept execution, newest first, with what happened to its webhooks."""
    with n8n.lock:
        return [n8n.control_view(e) for e in n8n.executions()]


@control_router.get("/deliveries")
def deliveries(n8n: N8n, workflow_key: str | None = None) -> dict[str, Any]:
    """Per workflow, since the reset: executions by how they ended and every delivery id by
    what became of it (sent, delivered, dropped, duplicated, failed, not_sent)."""
    if workflow_key is not None and workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {workflow_key!r}")
    return n8n.deliveries(workflow_key)


@control_router.post("/prune")
def prune(chosen: PruneRequest, n8n: N8n) -> dict[str, Any]:
    """Prune executions as n8n's pruning would: now, or right after the next list."""
    if chosen.workflow_key is not None and chosen.workflow_key not in n8n.workflows:
        raise HTTPException(400, detail=f"no simulated n8n workflow {chosen.workflow_key!r}")
    if chosen.when == "after_next_list":
        n8n.arm_prune(chosen)
        return {"pruned": [], "skipped": [], "armed": True}
    pruned, skipped = n8n.prune_chosen(chosen)
    return {"pruned": pruned, "skipped": skipped, "armed": False}


@control_router.post("/rate-limit")
def set_rate_limit(limit: ApiRateLimit, n8n: N8n) -> dict[str, Any]:
    """Turn on the public API's read limit per API key (a fresh window for every key)."""
    n8n.set_rate_limit(limit)
    return {"rate_limit": limit.model_dump()}


@control_router.delete("/rate-limit")
def clear_rate_limit(n8n: N8n) -> dict[str, Any]:
    """Turn the rate limit off (n8n's default)."""
    n8n.set_rate_limit(None)
    return {"rate_limit": None}


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
    state.n8n = N8nData(state.seed, settings.model_copy(deep=True))
    state.settings.n8n = settings.model_copy(deep=True)
    return {"workflows": {w.key: w.id for w in settings.workflows}}
