"""The n8n public API under `/n8n/api/v1` (executions, one execution, workflows), with n8n's
API key check, its optional rate limit and its cursor encoding."""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from sync_platform_simulator.n8n.executions import Execution
from sync_platform_simulator.n8n.instance import N8nData
from sync_platform_simulator.n8n.models import js_json

API_PREFIX = "/n8n/api/v1"
DEFAULT_PAGE = 100
MAX_PAGE = 250
# The statuses n8n's `status` filter accepts (spec/paths/executions.yml), and what each
# matches: n8n's ExecutionRepository widens `error` to error and crashed.
STATUS_FILTER = ("canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting")
STATUS_MATCHES = {"error": ("error", "crashed")}


def n8n_data(request: Request) -> N8nData:
    """FastAPI dependency: the n8n instance of the simulator serving this request."""
    return request.app.state.simulator.n8n


N8n = Annotated[N8nData, Depends(n8n_data)]
ApiKey = Annotated[str | None, Header(alias="X-N8N-API-KEY")]
router = APIRouter(prefix=API_PREFIX)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _admitted(n8n: N8nData, api_key: str | None) -> JSONResponse | dict[str, str]:
    """The refusal for this request (401, or 429 past the rate limit), else the rate-limit
    headers every answer carries. Only requests with a valid API key count, as in n8n."""
    if api_key is None:
        return _message(401, "'X-N8N-API-KEY' header required")
    if api_key != n8n.settings.api_key:
        return _message(401, "unauthorized")
    allowed, headers = n8n.take_read(api_key)
    if not allowed:
        return _message(429, "Too Many Requests", headers)
    return headers


def _flag(text: str | None) -> bool | None:
    if text is None:
        return False
    return {"true": True, "false": False}.get(text.lower())


def _decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        decoded = json.loads(base64.b64decode(cursor, validate=True))
        last_id, limit = int(decoded["lastId"]), int(decoded["limit"])
    except (ValueError, KeyError, TypeError):
        return None
    return (last_id, limit) if limit >= 1 else None


def encode_cursor(last_id: str, limit: int) -> str:
    """n8n's nextCursor: Buffer.from(JSON.stringify({lastId, limit})).toString('base64')
    (pagination.service.ts), byte for byte: no spaces, lastId a string, limit a number."""
    return base64.b64encode(js_json({"lastId": last_id, "limit": limit}).encode()).decode()


def _status_matches(execution: Execution, status: str | None) -> bool:
    """n8n's list filter: running executions only when asked for, `error` includes crashed."""
    if status is None:
        return execution.status != "running"
    return execution.status in STATUS_MATCHES.get(status, (status,))


@router.get("/executions")
def list_executions(
    n8n: N8n,
    api_key: ApiKey = None,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    status: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
    include_data: Annotated[str | None, Query(alias="includeData")] = None,
) -> JSONResponse:
    """Newest first; running executions left out unless asked for; at most 250 per page."""
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
    page = DEFAULT_PAGE
    if limit is not None:
        if not limit.isdigit():
            return _message(400, "request/query/limit must be number", admitted)
        page = int(limit)
        if page > MAX_PAGE:
            return _message(400, f"request/query/limit must be <= {MAX_PAGE}", admitted)
        if page < 1:
            return _message(400, "request/query/limit must be >= 1", admitted)
    last_id: int | None = None
    if cursor:
        decoded = _decode_cursor(cursor)
        if decoded is None:
            return _message(400, "An invalid cursor was provided", admitted)
        last_id, page = decoded[0], min(decoded[1], MAX_PAGE)
    if status is not None and status not in STATUS_FILTER:
        return _message(
            400, "request/query/status must be equal to one of the allowed values", admitted
        )
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean", admitted)
    rows = [
        e
        for e in n8n.executions()
        if _status_matches(e, status)
        and (workflow_id is None or e.workflow.id == workflow_id)
        and (last_id is None or e.int_id < last_id)
    ]
    taken = rows[:page]
    next_cursor = encode_cursor(taken[-1].id, page) if len(rows) > page else None
    with n8n.lock:
        data = [n8n.summary(e, with_data) for e in taken]
    n8n.after_list(workflow_id)
    return JSONResponse({"data": data, "nextCursor": next_cursor}, headers=admitted)


@router.get("/executions/{execution_id}")
def get_execution(
    execution_id: str,
    n8n: N8n,
    api_key: ApiKey = None,
    include_data: Annotated[str | None, Query(alias="includeData")] = None,
) -> JSONResponse:
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
    with_data = _flag(include_data)
    if with_data is None:
        return _message(400, "request/query/includeData must be boolean", admitted)
    execution = n8n.execution(execution_id)
    if execution is None:
        return _message(404, "Not Found", admitted)
    with n8n.lock:
        return JSONResponse(n8n.summary(execution, with_data), headers=admitted)


@router.get("/workflows")
def list_workflows(n8n: N8n, api_key: ApiKey = None) -> JSONResponse:
    admitted = _admitted(n8n, api_key)
    if isinstance(admitted, JSONResponse):
        return admitted
    data = [
        {
            "id": w.id,
            "name": w.name,
            "active": True,
            "isArchived": False,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "tags": [{"id": "sync", "name": "warehouse"}],
        }
        for w in n8n.settings.workflows
    ]
    return JSONResponse({"data": data, "nextCursor": None}, headers=admitted)
