"""n8n's public REST API, the part the gap resync reads: executions of a workflow.

`GET /api/v1/executions?workflowId=&status=&limit=&cursor=` lists newest first, at
most 250 per page, following `nextCursor`; it has no date filter and leaves running
executions out. `GET /api/v1/executions/{id}?includeData=true` returns one with its run
data; a pruned execution (n8n keeps 14 days by default) is a 404. What an execution sent is
read from that data in deliveries.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from sync_platform.errors import ConfigurationError, ValidationError
from sync_platform.sources.http_session import HttpStatusError, RetrySettings, SourceHttpClient

SOURCE = "n8n"
# The environment variables the n8n API is configured from (defs/n8n/resources.py); each
# checked workflow's id in n8n comes from N8N_WORKFLOW_ID_<KEY> unless webhooks.yaml names
# another variable.
BASE_URL_ENV = "N8N_BASE_URL"
API_KEY_ENV = "N8N_API_KEY"
WORKFLOW_ID_ENV_PREFIX = "N8N_WORKFLOW_ID_"
MAX_PAGE = 250
N8N_RETENTION_HOURS = 336  # n8n's EXECUTIONS_DATA_MAX_AGE default: what it still holds


class N8nApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = MAX_PAGE,
        timeout_seconds: float = 30.0,
        retry: RetrySettings | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.page_size = min(page_size, MAX_PAGE)
        self.http = SourceHttpClient(
            SOURCE,
            base_url,
            headers={"X-N8N-API-KEY": api_key, "Accept": "application/json"},
            timeout_seconds=timeout_seconds,
            retry=retry,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> N8nApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            return self.http.request_json("GET", path, params=params)
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                raise ConfigurationError(
                    f"n8n refused the API key ({exc.status})",
                    hint=f"check {API_KEY_ENV} (an n8n API key, Settings → n8n API) and "
                    f"{BASE_URL_ENV}",
                ) from None
            raise

    def executions(self, workflow_id: str, status: str = "success") -> Iterator[dict[str, Any]]:
        """Executions of one workflow, newest first, every page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {
                "workflowId": workflow_id,
                "status": status,
                "limit": self.page_size,
            }
            if cursor:
                params["cursor"] = cursor
            page = self._get("/api/v1/executions", params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise ValidationError(
                    "n8n: GET /api/v1/executions answered without a `data` list",
                    hint=f"check that {BASE_URL_ENV} is the n8n base URL (no /api/v1)",
                )
            yield from data
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def execution(self, execution_id: str) -> dict[str, Any] | None:
        """One execution with its run data; None when n8n no longer has it (pruned)."""
        try:
            return self._get(f"/api/v1/executions/{execution_id}", {"includeData": "true"})
        except HttpStatusError as exc:
            if exc.status == 404:
                return None
            raise


def stopped_at(execution: dict[str, Any]) -> datetime | None:
    text = execution.get("stoppedAt") or execution.get("startedAt")
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
