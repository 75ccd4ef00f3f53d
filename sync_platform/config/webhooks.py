"""The shape of config/webhooks.yaml: the n8n workflows that may POST to the receiver, how each
authenticates, and where the gap resync finds it in n8n. Secrets never live in the file.

Validated here, below the receiver and the n8n definitions that both read it.
"""

from __future__ import annotations

import re
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sync_platform.config.loader import load_validated

CONFIG_FILE = "webhooks.yaml"
DEFAULT_SEND_NODE = "Send to warehouse"
SECRET_ENV_PREFIX = "N8N_WEBHOOK_SECRET_"  # + the workflow key in capitals, by default
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Headers the protocol itself uses cannot carry a shared secret.
RESERVED_HEADERS = frozenset(
    {
        "host", "content-type", "content-length", "transfer-encoding", "connection",
        "webhook-id", "webhook-timestamp", "webhook-signature", "x-n8n-execution-id",
    }
)  # fmt: skip


AuthMode = Literal["standard_webhooks", "header"]
WorkflowKey = pydantic.constr(pattern=r"^[a-z][a-z0-9_]{0,99}$")


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
        description="the n8n node that POSTs to the receiver; the gap resync takes the "
        "payload from its input item",
    )

    def secret_variable(self, key: str) -> str:
        """The environment variable holding this workflow's secret."""
        return self.secret_env or SECRET_ENV_PREFIX + key.upper()

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
