"""Access tokens for Google APIs (GA4 Data API, Sheets API), shared by their clients.

A service-account JSON key is exchanged for an OAuth2 access token with the JWT-bearer
grant by google-auth (no hand-written crypto); the token is cached until shortly before it
expires. The token URL can be overridden so the simulator can serve it. A static token
serves tests and callers that obtain tokens elsewhere.

A token can be revoked before it expires (a deleted key, withdrawn access): `with_token`
answers the API's 401 by dropping the token, asking for a new one and sending once more.
A grant Google refuses (`invalid_grant`: a deleted account or key) is remembered for
`REFUSAL_REMEMBERED_SECONDS` through a circuit breaker shared by every process of the
deployment, so the steps of a run do not each ask again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import google.auth.exceptions
import google.auth.transport.requests
import pybreaker
from google.oauth2 import service_account

from sync_platform.errors import ConfigurationError, SourceUnavailableError
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, breaker_for

log = logging.getLogger("sync_platform.http")
T = TypeVar("T")

ANALYTICS_READONLY = "https://www.googleapis.com/auth/analytics.readonly"
SPREADSHEETS_READONLY = "https://www.googleapis.com/auth/spreadsheets.readonly"
# The environment variables Google credentials come from (GA4 and the seller sheet share them).
SERVICE_ACCOUNT_JSON_ENV = "GOOGLE_SERVICE_ACCOUNT_JSON"
TOKEN_URI_ENV = "GOOGLE_TOKEN_URI"
REFUSAL_REMEMBERED_SECONDS = 600.0
DEFAULT_TOKEN_TIMEOUT_SECONDS = 20.0
_REFUSALS = RetrySettings(breaker_fail_max=1, breaker_reset_seconds=REFUSAL_REMEMBERED_SECONDS)


class AccessTokenProvider(Protocol):
    def token(self) -> str:
        """A currently valid bearer token."""

    @property
    def identity(self) -> str:
        """Who the token speaks for (a service-account e-mail), for error messages."""

    def invalidate(self, token: str) -> None:
        """The API refused `token` (401): the next `token()` must not return it."""


def with_token(tokens: AccessTokenProvider, send: Callable[[dict[str, str]], T]) -> T:
    """`send(headers)` with a bearer token; a 401 (the token was revoked before it expired)
    is answered once with a new token. A second 401, or one on a token that cannot be
    renewed, is the caller's to explain."""
    token = tokens.token()
    try:
        return send({"Authorization": f"Bearer {token}"})
    except HttpStatusError as exc:
        if exc.status != 401:
            raise
        tokens.invalidate(token)
        renewed = tokens.token()
        if renewed == token:  # a static token: sending it again changes nothing
            raise
        log.warning("the token of %s was refused (401); sent again with a new one", tokens.identity)
        return send({"Authorization": f"Bearer {renewed}"})


class StaticToken:
    def __init__(self, token: str, identity: str = "a static bearer token"):
        self._token = token
        self._identity = identity

    def token(self) -> str:
        return self._token

    @property
    def identity(self) -> str:
        return self._identity

    def invalidate(self, token: str) -> None:
        """A static token cannot be renewed: the caller's second request fails the same."""


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


class _TimedRequest(google.auth.transport.requests.Request):
    """google-auth's transport with our timeout: its own default waits 120 s on a stalled
    token endpoint."""

    def __init__(self, timeout_seconds: float):
        super().__init__()
        self._timeout = timeout_seconds

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = min(kwargs.get("timeout") or self._timeout, self._timeout)
        return super().__call__(*args, **kwargs)


class ServiceAccountToken:
    """JWT-bearer exchange through google-auth, cached until near expiry, thread-safe."""

    def __init__(
        self,
        info: dict[str, Any],
        scopes: list[str],
        token_uri: str | None = None,
        timeout_seconds: float = DEFAULT_TOKEN_TIMEOUT_SECONDS,
    ):
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
        self._request = _TimedRequest(timeout_seconds)
        # one breaker per key: a new key is asked for at once, a refused one not again soon
        key_digest = hashlib.sha256(
            f"{info.get('client_email')}\n{info.get('private_key')}".encode()
        ).hexdigest()[:16]
        self._refusals_name = f"google-token:{key_digest}"

    @property
    def identity(self) -> str:
        return self._credentials.service_account_email

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._credentials.token == token:
                self._credentials.token = None  # not valid: the next token() refreshes

    def token(self) -> str:
        with self._lock:
            if not self._credentials.valid:  # no token yet, or expiring within the skew
                refusals = breaker_for(
                    self._refusals_name, _REFUSALS, exclude=(SourceUnavailableError,)
                )
                try:
                    refusals.call(self._refresh)
                except pybreaker.CircuitBreakerError:
                    raise ConfigurationError(
                        f"Google refused a token for {self.identity} within the last "
                        f"{REFUSAL_REMEMBERED_SECONDS / 60:.0f} minutes; no new token is asked "
                        "for with this key until then",
                        hint="check the key is current and the service account is enabled "
                        f"({SERVICE_ACCOUNT_JSON_ENV}); a new key is tried at once",
                    ) from None
            return self._credentials.token

    def _refresh(self) -> None:
        try:
            self._credentials.refresh(self._request)
        except google.auth.exceptions.RefreshError as exc:
            if exc.retryable:  # the token endpoint failing (5xx), not refusing this key
                raise SourceUnavailableError(
                    f"Google's token endpoint failed for {self.identity}: {exc.args[0]}",
                    hint="a Google outage: the next sync asks again",
                ) from None
            raise ConfigurationError(
                f"Google refused a token for {self.identity}: {exc.args[0]}",
                hint="check the key is current and the service account is enabled",
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise SourceUnavailableError(
                f"could not reach Google's token endpoint for {self.identity}: {exc}",
                hint="check network access to oauth2.googleapis.com",
            ) from None
        except (TypeError, ValueError, KeyError) as exc:
            # google-auth reading a 200 that is not a token answer (a body cut short on the
            # way parses as text, which it then indexes): the endpoint failing, not refusing
            # this key, so not remembered as a refusal
            raise SourceUnavailableError(
                f"Google's token endpoint answered {self.identity} with something that is not "
                f"a token ({exc.__class__.__name__})",
                hint="a broken answer on the way: the next sync asks again",
            ) from None
