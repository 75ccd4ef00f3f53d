"""Google credentials shared by the GA4 and Sheets resources: a service-account key from
the environment (or a static token for tests), turned into an access-token provider."""

from __future__ import annotations

import os

import dagster as dg

from sync_platform.errors import ConfigurationError
from sync_platform.settings import GOOGLE_SERVICE_ACCOUNT_JSON_ENV
from sync_platform.sources.google_auth import (
    AccessTokenProvider,
    ServiceAccountToken,
    StaticToken,
    load_service_account_info,
)


def token_provider(
    *,
    scope: str,
    service_account_json: str | None,
    token_uri: str | None,
    access_token: str | None,
    what: str,
) -> AccessTokenProvider:
    if access_token:
        return StaticToken(access_token)
    if not service_account_json:
        raise ConfigurationError(
            f"no Google credentials for {what}: {GOOGLE_SERVICE_ACCOUNT_JSON_ENV} is unset",
            hint="set it to the service account's JSON key (or the key file's path)",
        )
    info = load_service_account_info(service_account_json, GOOGLE_SERVICE_ACCOUNT_JSON_ENV)
    return ServiceAccountToken(info, [scope], token_uri=token_uri)


def optional_env(name: str, default: str | None) -> str | dg.EnvVar | None:
    """An EnvVar when the variable is set (its value stays out of the UI), else a default."""
    return dg.EnvVar(name) if os.environ.get(name) else default
