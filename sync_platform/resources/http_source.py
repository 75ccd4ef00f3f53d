"""What every HTTP source resource shares: paging, timeouts and the retry budget."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.sources.http_session import RetrySettings


class HttpSourceResource(dg.ConfigurableResource):
    page_size: int = Field(default=500, ge=1, description="records asked for per page")
    timeout_seconds: float = Field(default=30.0, gt=0, description="per request")
    retry_attempts: int = Field(default=5, ge=1, description="attempts per request")
    retry_wait_initial: float = Field(default=0.5, ge=0, description="first backoff, seconds")
    retry_wait_jitter: float = Field(default=1.0, ge=0, description="random extra backoff")

    def retry_settings(self) -> RetrySettings:
        return RetrySettings(
            attempts=self.retry_attempts,
            wait_initial=self.retry_wait_initial,
            wait_jitter=self.retry_wait_jitter,
        )
