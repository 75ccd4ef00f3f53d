"""The dealer feed as a Dagster resource, configured from the environment."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.settings import DEALER_FEED_API_KEY_ENV, DEALER_FEED_BASE_URL_ENV
from sync_platform.sources.dealer.client import DealerFeedClient
from sync_platform.sources.http_session import RetrySettings


class DealerFeedResource(dg.ConfigurableResource):
    base_url: str = Field(description=f"dealer API base URL ({DEALER_FEED_BASE_URL_ENV})")
    api_key: str = Field(description=f"dealer API key ({DEALER_FEED_API_KEY_ENV}); never logged")
    page_size: int = 500
    timeout_seconds: float = 30.0
    retry_attempts: int = 5
    retry_wait_initial: float = 0.5
    retry_wait_jitter: float = 1.0

    def client(self) -> DealerFeedClient:
        return DealerFeedClient(
            self.base_url,
            self.api_key,
            page_size=self.page_size,
            timeout_seconds=self.timeout_seconds,
            retry=RetrySettings(
                attempts=self.retry_attempts,
                wait_initial=self.retry_wait_initial,
                wait_jitter=self.retry_wait_jitter,
            ),
        )


def dealer_feed_resource() -> DealerFeedResource:
    return DealerFeedResource(
        base_url=dg.EnvVar(DEALER_FEED_BASE_URL_ENV), api_key=dg.EnvVar(DEALER_FEED_API_KEY_ENV)
    )
