"""The seller sheet (Google Sheets) as a Dagster resource, configured from the environment
and registered under `seller_sheet`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

import dagster as dg
from pydantic import Field

from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource, Records
from sync_platform.engine.scope import Scope
from sync_platform.orchestration.resources import GoogleSourceResource, optional_env
from sync_platform.sources.google_auth import SPREADSHEETS_READONLY
from sync_platform.sources.seller_sheet.client import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    PAGE_ROWS,
    READS_PER_MINUTE,
    SHEET_ID_ENV,
    SHEETS_RETRY,
    SheetsClient,
)


@contextmanager
def sheet_entity_source(
    client: SheetsClient,
    entity: EntityConfig,
    *,
    key_range: str | None = None,
    list_keys: bool = True,
) -> Iterator[EntitySource]:
    """A sheet entity: `entity.endpoint` is the A1 range (header row first), read whole every
    sync (a full snapshot). The key listing is a second read of just the key column(s),
    `key_range` or found by header name; `list_keys=False` leaves it out, for an entity that
    only some rows feed (its key column lists every row). The client is closed when the block
    ends: one client per sync."""
    key_fields = [entity.fields[column].source for column in entity.key]

    def pages(_since: datetime | None) -> Iterator[Records]:
        return client.pages(entity.endpoint)

    def key_listing() -> Iterator[Records]:
        listed = client.key_records(
            key_range or client.key_range(entity.endpoint, key_fields), key_fields
        )
        for start in range(0, len(listed), PAGE_ROWS):
            yield listed[start : start + PAGE_ROWS]

    try:
        yield EntitySource(
            pages=pages,
            key_listing=key_listing if list_keys else None,
            subject=f"spreadsheet {client.spreadsheet_id}, range {entity.endpoint}",
        )
    finally:
        client.close()


class SellerSheetResource(GoogleSourceResource):
    key: ClassVar[str] = "seller_sheet"
    required_env: ClassVar[tuple[str, ...]] = (SHEET_ID_ENV, *GoogleSourceResource.required_env)

    env_prefix: ClassVar[str] = "SELLER_SHEET_"
    tunable: ClassVar[tuple[str, ...]] = (
        "reads_per_minute",
        "timeout_seconds",
        "retry_attempts",
        "retry_seconds",
    )

    spreadsheet_id: str = Field(description=f"the sheet's id ({SHEET_ID_ENV})")
    base_url: str = DEFAULT_BASE_URL
    reads_per_minute: int = Field(
        default=READS_PER_MINUTE, ge=1, description="reads a minute the client keeps under"
    )
    retry_attempts: int = Field(
        default=SHEETS_RETRY.attempts, ge=1, description="attempts per read (5xx, 429, stalls)"
    )
    retry_seconds: float = Field(
        default=SHEETS_RETRY.total_seconds, gt=0, description="time budget of one read's attempts"
    )

    def client(self) -> SheetsClient:
        return SheetsClient(
            self.spreadsheet_id,
            self.token_provider(scope=SPREADSHEETS_READONLY, what="the seller sheet"),
            base_url=self.base_url,
            reads_per_minute=self.reads_per_minute,
            timeout_seconds=self.timeout_seconds,
            retry=replace(
                SHEETS_RETRY, attempts=self.retry_attempts, total_seconds=self.retry_seconds
            ),
        )

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        # The seller-number column lists every seller, not only those with a property.
        return sheet_entity_source(self.client(), entity, list_keys=not entity.skip_when_empty)

    @classmethod
    def from_env(cls) -> SellerSheetResource:
        return cls(
            spreadsheet_id=dg.EnvVar(SHEET_ID_ENV),
            base_url=optional_env(BASE_URL_ENV, DEFAULT_BASE_URL),
            **cls.credentials_from_env(),
            **cls.tuning_from_env(),
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={SellerSheetResource.key: SellerSheetResource.from_env()})
