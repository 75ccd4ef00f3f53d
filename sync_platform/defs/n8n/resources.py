"""n8n for Dagster: the webhook inbox the event assets read (`webhook_inbox`), and the
executions API the delivery-gap check reads (`n8n_api`), both configured from the
environment and registered here."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from sync_platform.config.models import EntityConfig
from sync_platform.config.webhooks import load_webhooks_config
from sync_platform.defs.n8n.delivery_gaps import DEFAULT_MAX_READS
from sync_platform.engine.ports import EntitySource
from sync_platform.engine.scope import Scope
from sync_platform.errors import ConfigurationError
from sync_platform.inbox.processing import DEFAULT_BATCH_SIZE, InboxBatch
from sync_platform.orchestration.resources import (
    EntitySourceResource,
    HttpSourceResource,
    WarehouseResource,
    optional_env,
)
from sync_platform.sources.n8n.api import (
    API_KEY_ENV,
    BASE_URL_ENV,
    MAX_PAGE,
    N8N_RETENTION_HOURS,
    N8nApiClient,
)


def workflow_key_of(entity: EntityConfig) -> str:
    key = entity.options.get("workflow_key")
    if not key:
        raise ConfigurationError(
            f"entity {entity.name} has no options.workflow_key",
            hint="name the webhooks.yaml workflow it reads in config/sources/n8n_events.yaml",
        )
    return key


class WebhookInboxResource(EntitySourceResource):
    """The receiver's inbox in the warehouse; each processing run takes at most
    `batch_size` pending deliveries per workflow (the sensor launches another for the rest)."""

    key: ClassVar[str] = "webhook_inbox"

    warehouse: WarehouseResource
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)

    def engine(self) -> sa.Engine:
        return self.warehouse.ready_engine()

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        """The pending deliveries of the entity's workflow, marked in the load transaction."""
        batch = InboxBatch(self.engine(), workflow_key_of(entity), self.batch_size)
        return nullcontext(
            EntitySource(pages=batch.pages, extra_metadata=batch.metadata, on_commit=batch.mark)
        )


class N8nApiResource(HttpSourceResource):
    key: ClassVar[str] = "n8n_api"
    required_env: ClassVar[tuple[str, ...]] = (BASE_URL_ENV, API_KEY_ENV)
    env_prefix: ClassVar[str] = "N8N_"
    tunable: ClassVar[tuple[str, ...]] = (
        *HttpSourceResource.tunable,
        "gap_lookback_hours",
        "gap_max_reads",
    )

    base_url: str | None = Field(
        default=None, description=f"n8n base URL, without /api/v1 ({BASE_URL_ENV})"
    )
    api_key: str | None = Field(
        default=None, description=f"n8n API key ({API_KEY_ENV}); never logged"
    )
    page_size: int = Field(default=MAX_PAGE, ge=1, le=MAX_PAGE)
    gap_lookback_hours: int = Field(
        default=N8N_RETENTION_HOURS,
        ge=1,
        description="hours of executions the delivery-gap check compares with the inbox: n8n's "
        "retention (EXECUTIONS_DATA_MAX_AGE, 336 h by default), so every execution n8n still "
        "holds is checked; the runtime setting n8n_gap_lookback_hours overrides it when set",
    )
    gap_max_reads: int = Field(
        default=DEFAULT_MAX_READS,
        ge=1,
        description="executions the delivery-gap check reads from n8n per workflow and check "
        "(N8N_GAP_MAX_READS); the rest wait for the next check, oldest first",
    )

    def client(self) -> N8nApiClient:
        if not self.base_url or not self.api_key:
            raise ConfigurationError(
                "the n8n delivery-gap check needs the n8n API",
                hint=f"set {BASE_URL_ENV} and {API_KEY_ENV} (docs/sources/n8n.md)",
            )
        return N8nApiClient(
            self.base_url,
            self.api_key,
            **self.http_options(),
        )


@dg.definitions
def resources() -> dg.Definitions:
    load_webhooks_config()  # a webhooks.yaml that does not validate stops the load, named
    return dg.Definitions(
        resources={
            WebhookInboxResource.key: WebhookInboxResource(warehouse=WarehouseResource.from_env()),
            N8nApiResource.key: N8nApiResource(
                base_url=optional_env(BASE_URL_ENV, None),
                api_key=optional_env(API_KEY_ENV, None),
                **N8nApiResource.tuning_from_env(),
            ),
        }
    )
