"""The seller sheet (Google Sheets) as a Dagster resource, configured from the environment."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from sync_platform.errors import ConfigurationError
from sync_platform.settings import (
    GOOGLE_SERVICE_ACCOUNT_JSON_ENV,
    GOOGLE_TOKEN_URI_ENV,
    SELLER_SHEET_BASE_URL_ENV,
    SELLER_SHEET_ID_ENV,
)
from sync_platform.sources.google_auth import (
    SPREADSHEETS_READONLY,
    AccessTokenProvider,
    ServiceAccountToken,
    StaticToken,
    load_service_account_info,
)
from sync_platform.sources.sheets.client import DEFAULT_BASE_URL, SheetsClient


class SellerSheetResource(dg.ConfigurableResource):
    spreadsheet_id: str = Field(description=f"the sheet's id ({SELLER_SHEET_ID_ENV})")
    service_account_json: str | None = Field(
        default=None,
        description=f"service-account key JSON or path ({GOOGLE_SERVICE_ACCOUNT_JSON_ENV})",
    )
    token_uri: str | None = Field(
        default=None, description=f"override of the key's token URI ({GOOGLE_TOKEN_URI_ENV})"
    )
    access_token: str | None = Field(
        default=None, description="a static bearer token instead of a service account (tests)"
    )
    base_url: str = DEFAULT_BASE_URL
    reads_per_minute: int = 60

    def token_provider(self) -> AccessTokenProvider:
        if self.access_token:
            return StaticToken(self.access_token)
        if not self.service_account_json:
            raise ConfigurationError(
                f"no credentials for the seller sheet: {GOOGLE_SERVICE_ACCOUNT_JSON_ENV} is unset",
                hint="set it to the service account's JSON key (or the key file's path)",
            )
        info = load_service_account_info(self.service_account_json, GOOGLE_SERVICE_ACCOUNT_JSON_ENV)
        return ServiceAccountToken(info, [SPREADSHEETS_READONLY], token_uri=self.token_uri)

    def client(self) -> SheetsClient:
        return SheetsClient(
            self.spreadsheet_id,
            self.token_provider(),
            base_url=self.base_url,
            reads_per_minute=self.reads_per_minute,
        )


def _optional(name: str, default: str | None) -> str | dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else default


def seller_sheet_resource() -> SellerSheetResource:
    return SellerSheetResource(
        spreadsheet_id=dg.EnvVar(SELLER_SHEET_ID_ENV),
        service_account_json=_optional(GOOGLE_SERVICE_ACCOUNT_JSON_ENV, None),
        token_uri=_optional(GOOGLE_TOKEN_URI_ENV, None),
        base_url=_optional(SELLER_SHEET_BASE_URL_ENV, DEFAULT_BASE_URL),
    )
