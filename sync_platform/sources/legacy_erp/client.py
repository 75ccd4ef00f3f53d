"""Client for the legacy ERP: a 4D database behind a simple REST API.

Wire format (docs/sources/legacy_erp_api.md):
- `POST /api/v1/login` `{"username", "password"}` → `{"session_token", "expires_in"}`;
  every other request carries `X-Session-Token`. An expired or unknown session answers
  401 `{"error": "session expired"}`: the client logs in again once and repeats the request.
- `GET /api/v1/{entity}?page=&page_size=&modified_since=<ISO 8601>[&fields=Key]` →
  `{"data": [...], "page", "page_size", "total_records", "total_pages"}`.

The client knows no entity: an entity is an endpoint in the source's YAML config. Bodies may
be ISO-8859-1 (declared in Content-Type; the HTTP layer decodes by it). Records arrive as the
ERP holds them, dirt included (`"NaN"`, `0000-00-00`, trailing spaces): cleaning is declared
per field in the entity config, so a quarantined record shows what the source really sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn

from sync_platform.errors import ConfigurationError
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, SourceHttpClient

SOURCE = "legacy_erp"
# The environment variables the ERP is configured from (defs/legacy_erp/resources.py).
BASE_URL_ENV = "LEGACY_ERP_BASE_URL"
USERNAME_ENV = "LEGACY_ERP_USERNAME"
PASSWORD_ENV = "LEGACY_ERP_PASSWORD"
LOGIN_PATH = "/api/v1/login"
SESSION_HEADER = "X-Session-Token"

Records = list[dict[str, Any]]
log = logging.getLogger(__name__)


def modified_since_param(moment: datetime) -> str:
    """ISO 8601 UTC to the whole second (naive means UTC). Flooring the second can only
    widen the window, never skip a change."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LegacyErpClient:
    """One login session, reused for every request until the ERP says it expired."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        page_size: int = 500,
        timeout_seconds: float = 30.0,
        retry: RetrySettings | None = None,
    ):
        self.page_size = page_size
        self._credentials = {"username": username, "password": password}
        self._session: str | None = None
        self._login_lock = threading.Lock()
        self.logins = 0  # sessions opened, for metadata and tests
        self.http = SourceHttpClient(
            SOURCE,
            base_url,
            headers={"Accept": "application/json"},
            timeout_seconds=timeout_seconds,
            retry=retry,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LegacyErpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- session -------------------------------------------------------------------------

    def login(self) -> str:
        """Open a new session (replacing any current one) and return its token."""
        with self._login_lock:
            try:
                body = self.http.request_json("POST", LOGIN_PATH, json=self._credentials)
            except HttpStatusError as exc:
                if exc.status in (401, 403):
                    raise ConfigurationError(
                        f"{SOURCE} refused the login ({exc.status}): wrong user name or password",
                        hint=f"check {USERNAME_ENV} and {PASSWORD_ENV}",
                    ) from None
                raise
            token = body.get("session_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise ConfigurationError(
                    f"{SOURCE}: the login answer holds no session_token",
                    hint=f"check that {BASE_URL_ENV} points at the ERP's REST API",
                )
            self._session = token
            self.logins += 1
            return token

    def get_json(self, path: str, params: dict[str, Any]) -> Any:
        """GET within the session: log in first if there is none, and once more if the ERP
        says the session expired. A refusal right after a fresh login is a configuration
        problem, not something to loop on."""
        token = self._session or self.login()
        try:
            return self._get(path, params, token)
        except HttpStatusError as exc:
            if exc.status != 401:
                self._raise_for(exc, path)
        log.info("%s: session expired during GET %s; logging in again", SOURCE, path)
        token = self.login()
        try:
            return self._get(path, params, token)
        except HttpStatusError as exc:
            if exc.status == 401:
                raise ConfigurationError(
                    f"{SOURCE}: GET {path} refused a session opened a moment before (401)",
                    hint=f"check that the ERP user in {USERNAME_ENV} may read {path}",
                ) from None
            self._raise_for(exc, path)

    def _get(self, path: str, params: dict[str, Any], token: str) -> Any:
        return self.http.request_json("GET", path, params=params, headers={SESSION_HEADER: token})

    @staticmethod
    def _raise_for(exc: HttpStatusError, path: str) -> NoReturn:
        if exc.status == 403:
            raise ConfigurationError(
                f"{SOURCE}: the ERP user may not read {path} (403)",
                hint=f"grant the user in {USERNAME_ENV} read access to it",
            ) from None
        if exc.status == 404:
            raise ConfigurationError(
                f"{SOURCE}: the ERP has no endpoint {path} (404)",
                hint=f"check the entity's endpoint in its source config and {BASE_URL_ENV}",
            ) from None
        raise exc

    # -- lists ---------------------------------------------------------------------------

    def pages(
        self,
        endpoint: str,
        *,
        modified_since: datetime | None = None,
        fields: list[str] | None = None,
    ) -> Iterator[Records]:
        """Every page of an entity list, in order, to the last page the ERP announced.

        `modified_since`: only records changed at or after it (records whose ModifiedDate is
        not a date are always included by the ERP). `fields`: a sparse listing of just those
        fields (the key listing).
        """
        params: dict[str, Any] = {"page_size": self.page_size}
        if modified_since is not None:
            params["modified_since"] = modified_since_param(modified_since)
        if fields:
            params["fields"] = ",".join(fields)
        page = 1
        while True:
            body = self.get_json(endpoint, {**params, "page": page})
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise ConfigurationError(
                    f"{SOURCE}: {endpoint} page {page} has no 'data' list",
                    hint=f"check that {BASE_URL_ENV} points at the ERP's REST API",
                )
            if data:
                yield data
            # Walk to the last page announced: a page can come back short or empty (a
            # record removed mid-walk) without the ones after it being empty.
            total_pages = body.get("total_pages")
            if (page >= int(total_pages)) if total_pages is not None else not data:
                return
            page += 1
