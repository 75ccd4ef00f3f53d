"""Google Analytics 4 as a Dagster resource, configured from the environment."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.resources.google import optional_env, token_provider
from sync_platform.settings import (
    GA4_BASE_URL_ENV,
    GA4_PROPERTY_ID_ENV,
    GOOGLE_SERVICE_ACCOUNT_JSON_ENV,
    GOOGLE_TOKEN_URI_ENV,
)
from sync_platform.sources.ga4.client import DEFAULT_BASE_URL, GA4Client, QuotaFloor
from sync_platform.sources.google_auth import ANALYTICS_READONLY


class GA4Resource(dg.ConfigurableResource):
    property_id: str = Field(description=f"the GA4 property id ({GA4_PROPERTY_ID_ENV})")
    service_account_json: str | None = Field(
        default=None,
        description=f"service-account key JSON or path ({GOOGLE_SERVICE_ACCOUNT_JSON_ENV})",
    )
    token_uri: str | None = Field(
        default=None, description=f"override of the key's token URI ({GOOGLE_TOKEN_URI_ENV})"
    )
    access_token: str | None = Field(default=None, description="a static token (tests)")
    base_url: str = DEFAULT_BASE_URL
    page_size: int = Field(default=100_000, ge=1, le=250_000)
    min_tokens_per_hour: int = Field(
        default=50, description="stop before the hourly token quota falls below this"
    )
    min_tokens_per_day: int = Field(
        default=500, description="stop before the daily token quota falls below this"
    )

    def client(self) -> GA4Client:
        token = token_provider(
            scope=ANALYTICS_READONLY,
            service_account_json=self.service_account_json,
            token_uri=self.token_uri,
            access_token=self.access_token,
            what=f"GA4 property {self.property_id}",
        )
        return GA4Client(
            token,
            property_id=self.property_id,
            base_url=self.base_url,
            page_size=self.page_size,
            min_remaining_tokens=QuotaFloor(self.min_tokens_per_hour, self.min_tokens_per_day),
        )


def ga4_resource() -> GA4Resource:
    return GA4Resource(
        property_id=dg.EnvVar(GA4_PROPERTY_ID_ENV),
        service_account_json=optional_env(GOOGLE_SERVICE_ACCOUNT_JSON_ENV, None),
        token_uri=optional_env(GOOGLE_TOKEN_URI_ENV, None),
        base_url=optional_env(GA4_BASE_URL_ENV, DEFAULT_BASE_URL),
    )
