"""The legacy ERP as a Dagster resource, configured from the environment."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.resources.http_source import HttpSourceResource
from sync_platform.settings import (
    LEGACY_ERP_BASE_URL_ENV,
    LEGACY_ERP_PASSWORD_ENV,
    LEGACY_ERP_USERNAME_ENV,
)
from sync_platform.sources.legacy_erp.client import LegacyErpClient


class LegacyErpResource(HttpSourceResource):
    base_url: str = Field(description=f"ERP REST API root ({LEGACY_ERP_BASE_URL_ENV})")
    username: str = Field(description=f"ERP user ({LEGACY_ERP_USERNAME_ENV})")
    password: str = Field(description=f"ERP password ({LEGACY_ERP_PASSWORD_ENV}); never logged")

    def client(self) -> LegacyErpClient:
        return LegacyErpClient(
            self.base_url,
            self.username,
            self.password,
            page_size=self.page_size,
            timeout_seconds=self.timeout_seconds,
            retry=self.retry_settings(),
        )


def legacy_erp_resource() -> LegacyErpResource:
    return LegacyErpResource(
        base_url=dg.EnvVar(LEGACY_ERP_BASE_URL_ENV),
        username=dg.EnvVar(LEGACY_ERP_USERNAME_ENV),
        password=dg.EnvVar(LEGACY_ERP_PASSWORD_ENV),
    )
