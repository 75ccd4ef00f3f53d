"""The shape of config/webhooks.yaml: the n8n workflows that may POST to the receiver, how each
authenticates, and where the gap resync finds it in n8n. Secrets never live in the file.

Validated here, below the receiver and the n8n definitions that both read it.
"""

from __future__ import annotations

import re
import string
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sync_platform.config.loader import load_validated

CONFIG_FILE = "webhooks.yaml"
DEFAULT_SEND_NODE = "Send to warehouse"
SECRET_ENV_PREFIX = "N8N_WEBHOOK_SECRET_"  # + the workflow key in capitals, by default
# A delivery id (webhook-id) the receiver accepts; no dots: they delimit the signed text.
DELIVERY_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,200}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Headers the protocol itself uses cannot carry a shared secret.
RESERVED_HEADERS = frozenset(
    {
        "host", "content-type", "content-length", "transfer-encoding", "connection",
        "webhook-id", "webhook-timestamp", "webhook-signature", "x-n8n-execution-id",
    }
)  # fmt: skip


AuthMode = Literal["standard_webhooks", "header"]
# What a delivery id template may use: the execution's id and workflow id, the item's index in
# the payload node's output, and any field of the item (`item.<field>[.<field>…]`).
TEMPLATE_FIELDS = ("execution_id", "workflow_id", "item_index")
NodeName = pydantic.constr(min_length=1, max_length=128)
WorkflowKey = pydantic.constr(pattern=r"^[a-z][a-z0-9_]{0,99}$")


def template_fields(template: str) -> list[str]:
    """The fields a delivery id template names, checked: `{execution_id}`, `{workflow_id}`,
    `{item_index}` or `{item.<field>}`; a ValueError says what is wrong."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        braces = "write {{ and }} for braces"
        raise ValueError(f"delivery_id {template!r}: {exc} ({braces})") from None
    fields = [name for _, name, _, _ in parsed if name is not None]
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"delivery_id {template!r}: no format spec or conversion allowed")
        if name not in TEMPLATE_FIELDS and not re.fullmatch(r"item(\.[^.{}\[\]]+)+", name):
            raise ValueError(
                f"delivery_id {template!r}: {{{name}}} is not known; use {{execution_id}}, "
                "{workflow_id}, {item_index} or {item.<field>}"
            )
    if not fields:
        raise ValueError(f"delivery_id {template!r} names no field: every delivery would share it")
    return fields


class PayloadConfig(BaseModel):
    """Where a workflow's deliveries are in an execution's run data, and the id each was sent
    with. The default is the documented convention: the item entering the send node carries
    `webhookId` (the id) and `body` (the exact JSON text sent)."""

    model_config = ConfigDict(extra="forbid")

    node: NodeName | None = Field(  # type: ignore[valid-type]
        default=None,
        description="the node whose output items are the deliveries, one each; unset: the node "
        "whose output entered the send node",
    )
    body: Literal["field", "item"] = Field(
        default="field",
        description="field: the body is the item's `body_field` (a JSON text, or an object "
        "sent as JSON); item: the item's whole json is the body (an HTTP Request node sending "
        "`{{ JSON.stringify($json) }}` or 'Using Fields Below' from the item)",
    )
    body_field: str = Field(default="body", min_length=1, max_length=200)
    delivery_id: str = Field(
        default="{item.webhookId}",
        min_length=1,
        max_length=200,
        description="the webhook-id the send node sends, as a template over {execution_id}, "
        "{workflow_id}, {item_index} and {item.<field>}",
    )

    @model_validator(mode="after")
    def _template_is_known(self) -> PayloadConfig:
        template_fields(self.delivery_id)
        return self


class WorkflowConfig(BaseModel):
    """One workflow's entry in webhooks.yaml."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    enabled: bool = Field(
        default=True,
        description="false: the receiver refuses the workflow's deliveries as unknown and the "
        "gap check leaves it out (an overlay can also remove it: `<key>: null`)",
    )
    auth: AuthMode = "standard_webhooks"
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    header_name: str | None = None
    n8n_workflow_id_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    send_node: str = Field(
        default=DEFAULT_SEND_NODE,
        min_length=1,
        description="the n8n node that POSTs to the receiver (an HTTP Request node)",
    )
    payload: PayloadConfig = Field(default_factory=PayloadConfig)
    items: Literal["one", "many"] = Field(
        default="many",
        description="one: each execution sends one delivery, so an execution with a delivery "
        "in the inbox is complete without reading it from n8n; many: every execution is read "
        "from n8n once and each of its items compared",
    )
    resend_failed: bool = Field(
        default=False,
        description="an execution that failed in its send node after building its payload is "
        "resent from n8n's data (true) or only reported (false: re-run it in n8n)",
    )

    def secret_variable(self, key: str) -> str:
        """The environment variable holding this workflow's secret."""
        return self.secret_env or SECRET_ENV_PREFIX + key.upper()

    @model_validator(mode="after")
    def _ids_tell_items_apart(self) -> WorkflowConfig:
        fields = template_fields(self.payload.delivery_id)
        if self.items == "many" and all(f in ("execution_id", "workflow_id") for f in fields):
            raise ValueError(
                f"payload.delivery_id {self.payload.delivery_id!r} is the same for every item of "
                "an execution: add {item_index} or {item.<field>}, or set items: one"
            )
        return self

    @model_validator(mode="after")
    def _header_name_fits_mode(self) -> WorkflowConfig:
        if self.auth == "standard_webhooks" and self.header_name is not None:
            raise ValueError("header_name applies to auth: header only")
        if self.header_name is not None:
            if not HEADER_NAME.match(self.header_name):
                raise ValueError("header_name must be letters, digits and '-' (at most 64)")
            if self.header_name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header_name {self.header_name!r} is used by the protocol")
        return self


class WebhooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflows: dict[WorkflowKey, WorkflowConfig]  # type: ignore[valid-type]

    def enabled(self) -> dict[str, WorkflowConfig]:
        return {key: entry for key, entry in self.workflows.items() if entry.enabled}


def load_webhooks_config(environment: str | None = None) -> WebhooksConfig:
    """webhooks.yaml with `environments/<env>/webhooks.yaml` merged over it, validated."""
    return load_validated(
        CONFIG_FILE,
        WebhooksConfig,
        environment=environment,
        what="the webhook receiver",
        docs="docs/sources/n8n.md",
    )
