"""The seller sheet (Google Sheets) as a Dagster resource, configured from the environment."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform.resources.google import optional_env, token_provider
from sync_platform.settings import (
    GOOGLE_SERVICE_ACCOUNT_JSON_ENV,
    GOOGLE_TOKEN_URI_ENV,
    SELLER_SHEET_BASE_URL_ENV,
    SELLER_SHEET_ID_ENV,
)
from sync_platform.sources.google_auth import SPREADSHEETS_READONLY
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

    def client(self) -> SheetsClient:
        token = token_provider(
            scope=SPREADSHEETS_READONLY,
            service_account_json=self.service_account_json,
            token_uri=self.token_uri,
            access_token=self.access_token,
            what="the seller sheet",
        )
        return SheetsClient(
            self.spreadsheet_id,
            token,
            base_url=self.base_url,
            reads_per_minute=self.reads_per_minute,
        )


def seller_sheet_resource() -> SellerSheetResource:
    return SellerSheetResource(
        spreadsheet_id=dg.EnvVar(SELLER_SHEET_ID_ENV),
        service_account_json=optional_env(GOOGLE_SERVICE_ACCOUNT_JSON_ENV, None),
        token_uri=optional_env(GOOGLE_TOKEN_URI_ENV, None),
        base_url=optional_env(SELLER_SHEET_BASE_URL_ENV, DEFAULT_BASE_URL),
    )
