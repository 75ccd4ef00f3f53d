"""The dealer feed as a Dagster resource, configured from the environment and registered
under `dealer_feed`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ClassVar

import dagster as dg
from pydantic import Field

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource
from sync_platform.engine.scope import Scope
from sync_platform.orchestration.resources import EntitySourceResource, HttpSourceResource
from sync_platform.sources.dealer_feed.client import API_KEY_ENV, BASE_URL_ENV, DealerFeedClient


@contextmanager
def dealer_entity_source(client: DealerFeedClient, entity: EntityConfig) -> Iterator[EntitySource]:
    """Pages by sync mode (`updated_since` for incremental entities); a snapshot entity is
    verified against a sparse listing of its keys; records are written back with PUT or PATCH
    (a reconciliation's keep local). The client is closed when the block ends: one client per
    sync."""
    key_fields = ",".join(entity.fields[column].source for column in entity.key)

    def push(key: str, record: dict, replace: bool) -> object:
        return client.write_record(entity.endpoint, key, record, replace=replace)

    try:
        if entity.sync_mode == "incremental":
            yield EntitySource(
                pages=lambda since: client.pages_updated_since(since, entity.endpoint),
                push=push,
            )
        else:
            yield EntitySource(
                pages=lambda since: client.pages(entity.endpoint),
                key_listing=lambda: client.pages(entity.endpoint, fields=key_fields),
                push=push,
            )
    finally:
        client.close()


class DealerFeedResource(HttpSourceResource, EntitySourceResource):
    key: ClassVar[str] = "dealer_feed"
    env_prefix: ClassVar[str] = "DEALER_FEED_"
    required_env: ClassVar[tuple[str, ...]] = (BASE_URL_ENV, API_KEY_ENV)

    base_url: str = Field(description=f"dealer API base URL ({BASE_URL_ENV})")
    api_key: str = Field(description=f"dealer API key ({API_KEY_ENV}); never logged")

    def client(self) -> DealerFeedClient:
        return DealerFeedClient(
            self.base_url,
            self.api_key,
            **self.http_options(),
        )

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        return dealer_entity_source(self.client(), entity)

    @classmethod
    def from_env(cls) -> DealerFeedResource:
        return cls(
            base_url=dg.EnvVar(BASE_URL_ENV),
            api_key=dg.EnvVar(API_KEY_ENV),
            **cls.tuning_from_env(),
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={DealerFeedResource.key: DealerFeedResource.from_env()})
