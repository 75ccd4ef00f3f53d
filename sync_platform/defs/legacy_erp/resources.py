"""The legacy ERP as a Dagster resource, configured from the environment and registered
under `legacy_erp`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import ClassVar

import dagster as dg
from pydantic import Field

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource, Records
from sync_platform.engine.scope import Scope
from sync_platform.orchestration.resources import EntitySourceResource, HttpSourceResource
from sync_platform.sources.legacy_erp.client import (
    BASE_URL_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    LegacyErpClient,
)


@contextmanager
def erp_entity_source(client: LegacyErpClient, entity: EntityConfig) -> Iterator[EntitySource]:
    """Incremental entities read by ModifiedDate from the cursor on; every entity can list its
    keys (`fields=<key>`), which a full read (snapshot, or an incremental entity's full
    refresh) is verified against. The client is closed when the block ends: one client (one
    login session) per sync."""
    key_fields = [entity.fields[column].source for column in entity.key]

    def pages(since: datetime | None) -> Iterator[Records]:
        if entity.sync_mode == "incremental":
            return client.pages(entity.endpoint, modified_since=since)
        return client.pages(entity.endpoint)

    try:
        yield EntitySource(
            pages=pages, key_listing=lambda: client.pages(entity.endpoint, fields=key_fields)
        )
    finally:
        client.close()


class LegacyErpResource(HttpSourceResource, EntitySourceResource):
    key: ClassVar[str] = "legacy_erp"
    env_prefix: ClassVar[str] = "LEGACY_ERP_"
    required_env: ClassVar[tuple[str, ...]] = (BASE_URL_ENV, USERNAME_ENV, PASSWORD_ENV)

    base_url: str = Field(description=f"ERP REST API root ({BASE_URL_ENV})")
    username: str = Field(description=f"ERP user ({USERNAME_ENV})")
    password: str = Field(description=f"ERP password ({PASSWORD_ENV}); never logged")

    def client(self) -> LegacyErpClient:
        return LegacyErpClient(
            self.base_url,
            self.username,
            self.password,
            **self.http_options(),
        )

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        return erp_entity_source(self.client(), entity)

    @classmethod
    def from_env(cls) -> LegacyErpResource:
        return cls(
            base_url=dg.EnvVar(BASE_URL_ENV),
            username=dg.EnvVar(USERNAME_ENV),
            password=dg.EnvVar(PASSWORD_ENV),
            **cls.tuning_from_env(),
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={LegacyErpResource.key: LegacyErpResource.from_env()})
