"""Client for an EasyCars-style dealer API: paged stock (vehicles) and leads.

Pages are `?page=N&page_size=M` with an envelope `{items, page, total_pages, total}`;
`fields=StockNumber` asks for a sparse key listing, used to verify a stock sync against
the source independently of the pages that were fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sync_platform.errors import ConfigurationError
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, SourceHttpClient

SOURCE = "dealer_feed"
# The environment variables the dealer feed is configured from (defs/dealer_feed/resources.py).
BASE_URL_ENV = "DEALER_FEED_BASE_URL"
API_KEY_ENV = "DEALER_FEED_API_KEY"
Records = list[dict[str, Any]]


class DealerFeedClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = 500,
        timeout_seconds: float = 30.0,
        retry: RetrySettings | None = None,
    ):
        self.page_size = page_size
        self.http = SourceHttpClient(
            SOURCE,
            base_url,
            headers={"X-Api-Key": api_key, "Accept": "application/json"},
            timeout_seconds=timeout_seconds,
            retry=retry,
        )

    def close(self) -> None:
        self.http.close()

    def pages(self, endpoint: str, **params: Any) -> Iterator[Records]:
        """Every page of a list endpoint, in order, until the last page."""
        page = 1
        while True:
            try:
                body = self.http.get_json(
                    endpoint,
                    params={**params, "page": page, "page_size": self.page_size},
                )
            except HttpStatusError as exc:
                if exc.status in (401, 403):
                    raise ConfigurationError(
                        f"{SOURCE} refused the API key ({exc.status})",
                        hint=f"check {API_KEY_ENV} (and {BASE_URL_ENV})",
                    ) from None
                raise
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ConfigurationError(
                    f"{SOURCE}: {endpoint} page {page} has no 'items' list",
                    hint=f"check that {BASE_URL_ENV} points at the dealer API",
                )
            if items:
                yield items
            # Walk to the last page the source announced: a page can come back short or
            # empty (a record removed mid-walk) without the ones after it being empty.
            total_pages = body.get("total_pages")
            last_page = page >= int(total_pages) if total_pages is not None else not items
            if last_page:
                return
            page += 1

    def write_record(
        self, endpoint: str, key: str, record: dict[str, Any], *, replace: bool
    ) -> Any:
        """Write one record back: `PUT {endpoint}/{key}` creates or replaces it, `PATCH`
        changes only the fields given. How a reconciliation's "keep local" reaches the
        dealer system."""
        method = "PUT" if replace else "PATCH"
        try:
            return self.http.request_json(method, f"{endpoint}/{quote(key, safe='')}", json=record)
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                raise ConfigurationError(
                    f"{SOURCE} refused the API key for a write ({exc.status})",
                    hint=f"check that {API_KEY_ENV} may write stock and leads",
                ) from None
            raise

    def pages_updated_since(
        self, updated_since: datetime | None, endpoint: str
    ) -> Iterator[Records]:
        params = {}
        if updated_since is not None:
            moment = updated_since.astimezone(UTC).isoformat().replace("+00:00", "Z")
            params["updated_since"] = moment
        return self.pages(endpoint, **params)
