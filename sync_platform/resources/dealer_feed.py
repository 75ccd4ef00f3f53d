"""The dealer feed as a Dagster resource, configured from the environment."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.resources.http_source import HttpSourceResource
from sync_platform.settings import DEALER_FEED_API_KEY_ENV, DEALER_FEED_BASE_URL_ENV
from sync_platform.sources.dealer.client import DealerFeedClient


class DealerFeedResource(HttpSourceResource):
    base_url: str = Field(description=f"dealer API base URL ({DEALER_FEED_BASE_URL_ENV})")
    api_key: str = Field(description=f"dealer API key ({DEALER_FEED_API_KEY_ENV}); never logged")

    def client(self) -> DealerFeedClient:
        return DealerFeedClient(
            self.base_url,
            self.api_key,
            page_size=self.page_size,
            timeout_seconds=self.timeout_seconds,
            retry=self.retry_settings(),
        )


def dealer_feed_resource() -> DealerFeedResource:
    return DealerFeedResource(
        base_url=dg.EnvVar(DEALER_FEED_BASE_URL_ENV), api_key=dg.EnvVar(DEALER_FEED_API_KEY_ENV)
    )
