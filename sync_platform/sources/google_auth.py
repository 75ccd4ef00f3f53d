"""Access tokens for Google APIs (GA4 Data API, Sheets API), shared by their clients.

A service-account JSON key is exchanged for an OAuth2 access token with the JWT-bearer
grant by google-auth (no hand-written crypto); the token is cached until shortly before it
expires. The token URL can be overridden so the simulator can serve it. A static token
serves tests and callers that obtain tokens elsewhere.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Protocol

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from sync_platform.errors import ConfigurationError, SourceUnavailableError

ANALYTICS_READONLY = "https://www.googleapis.com/auth/analytics.readonly"
SPREADSHEETS_READONLY = "https://www.googleapis.com/auth/spreadsheets.readonly"
# The environment variables Google credentials come from (GA4 and the seller sheet share them).
SERVICE_ACCOUNT_JSON_ENV = "GOOGLE_SERVICE_ACCOUNT_JSON"
TOKEN_URI_ENV = "GOOGLE_TOKEN_URI"


class AccessTokenProvider(Protocol):
    def token(self) -> str:
        """A currently valid bearer token."""

    @property
    def identity(self) -> str:
        """Who the token speaks for (a service-account e-mail), for error messages."""


class StaticToken:
    def __init__(self, token: str, identity: str = "a static bearer token"):
        self._token = token
        self._identity = identity

    def token(self) -> str:
        return self._token

    @property
    def identity(self) -> str:
        return self._identity


def load_service_account_info(value: str, setting: str) -> dict[str, Any]:
    """The key as a dict, from the JSON itself or from a path to it; `setting` names the
    environment variable in errors. The key's contents never appear in a message."""
    text = value.strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigurationError(
                f"{setting} is neither service-account JSON nor a path to a file",
                hint="set it to the key file's path or to its JSON content",
            )
        text = path.read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigurationError(
            f"{setting} does not contain valid JSON", hint="use the key file Google Cloud issued"
        ) from None
    missing = {"client_email", "private_key", "token_uri"} - set(info)
    if info.get("type") != "service_account" or missing:
        absent = ", ".join(sorted(missing)) or "type"
        raise ConfigurationError(
            f"{setting} is not a service-account key (missing: {absent})",
            hint="create a JSON key for the service account in Google Cloud IAM",
        )
    return info


class ServiceAccountToken:
    """JWT-bearer exchange through google-auth, cached until near expiry, thread-safe."""

    def __init__(self, info: dict[str, Any], scopes: list[str], token_uri: str | None = None):
        if token_uri:
            info = {**info, "token_uri": token_uri}
        try:
            self._credentials = service_account.Credentials.from_service_account_info(
                info, scopes=scopes
            )
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"service-account key for {info.get('client_email', '?')} is unusable "
                f"({exc.__class__.__name__})",
                hint="issue a new JSON key for the service account",
            ) from None
        self._lock = threading.Lock()
        self._request = google.auth.transport.requests.Request()

    @property
    def identity(self) -> str:
        return self._credentials.service_account_email

    def token(self) -> str:
        with self._lock:
            if not self._credentials.valid:  # no token yet, or expiring within the skew
                try:
                    self._credentials.refresh(self._request)
                except google.auth.exceptions.RefreshError as exc:
                    raise ConfigurationError(
                        f"Google refused a token for {self.identity}: {exc.args[0]}",
                        hint="check the key is current and the service account is enabled",
                    ) from None
                except google.auth.exceptions.TransportError as exc:
                    raise SourceUnavailableError(
                        f"could not reach Google's token endpoint for {self.identity}: {exc}",
                        hint="check network access to oauth2.googleapis.com",
                    ) from None
            return self._credentials.token
