"""The simulated n8n's settings and request/report models: its workflows (how each builds,
signs and names its nodes), the instance settings, and the bodies and reports of the control
API's send and prune; with the constants and n8n's formats (timestamps, JSON.stringify) they
use. The package docstring says what each stands for in n8n."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sync_platform_simulator.signing import SECRET_PREFIX

DEFAULT_API_KEY = "sim-n8n-key"
WEBHOOK_PATH = "/webhooks/n8n/{key}"
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
