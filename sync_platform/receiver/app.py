"""The n8n webhook receiver: `POST /webhooks/n8n/{workflow_key}` into the durable inbox.

The order of checks, cheapest and most protective first (docs/sources/n8n.md explains it):

1. headers larger than the limit → 431 (any path);
2. unknown workflow → 404; a workflow without a usable secret → 401;
3. a declared Content-Length over the body limit → 413, before a byte of the body is read;
4. authentication from the headers alone: the shared secret (header mode), or the presence of
   the three Standard Webhooks headers, a delivery id without dots and a timestamp within the
   tolerance (replays) → 401 (a malformed delivery id → 400);
5. the body, streamed with a running byte count and a deadline → 413 / 408;
6. the signature over `{id}.{timestamp}.{body}` (standard_webhooks) → 401;
7. from here the sender is authenticated and a refusal is *kept* in `webhook_rejections` with
   its reason, headers (secrets removed) and raw body: missing or malformed delivery id → 400,
   content type not JSON → 415, invalid UTF-8 → 400, not a JSON object → 400, a bad or
   contradictory execution id → 400;
8. the delivery is committed to `webhook_inbox`; only then the answer: 202 `accepted`, or 200
   `duplicate` when its delivery id is already in (stored once). A warehouse failure → 503,
   so the sender retries.

Refusals before step 7 are counted in /metrics, never stored: they come from someone who could
not prove they are the workflow (or, for 413/408, who never sent a whole body).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from sync_platform.config.webhooks import DELIVERY_ID
from sync_platform.inbox.store import Delivery, Inbox, Rejection
from sync_platform.receiver import signing
from sync_platform.receiver.inbox_writer import InboxWriter
from sync_platform.receiver.metrics import METRICS_DIR_ENV, UNKNOWN_WORKFLOW, Metrics
from sync_platform.receiver.settings import ReceiverSettings, Workflow
from sync_platform.warehouse.connection import create_warehouse_engine, redacted

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/n8n/{workflow_key}"
EXECUTION_ID_HEADER = "x-n8n-execution-id"
EXECUTION_ID_FIELD = "executionId"  # top-level body field, used when the header is absent
EXECUTION_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
HEALTH_TIMEOUT_SECONDS = 5.0
METRICS_FLUSH_SECONDS = 1.0
CLIENT_CLOSED_REQUEST = 499  # nginx's code, for counting: nobody is left to answer
# Headers never stored: credentials of any kind, and every workflow's shared-secret header.
SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "x-api-key", "x-n8n-api-key",
        "webhook-signature",
    }
)  # fmt: skip


class Accepted(BaseModel):
    status: Literal["accepted"]
    delivery_id: str
    inbox_id: int


class Duplicate(BaseModel):
    status: Literal["duplicate"]
    delivery_id: str


class Refused(BaseModel):
    status: Literal["rejected", "error"]
    reason: str
    detail: str
    stored: bool


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    warehouse: str
    workflows: dict[str, str]


class Refusal(Exception):
    """A request the receiver answers with an error; `stored` once the sender is known."""

    def __init__(self, status: int, reason: str, detail: str, *, close: bool = False):
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.close = close


def _quoted(value: str, limit: int = 40) -> str:
    """A value the client sent, as a refusal quotes it: never more than a short prefix."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(value):,} chars)"


def _refusal_response(status: int, reason: str, detail: str, stored: bool, close: bool = False):
    body = {"status": "rejected", "reason": reason, "detail": detail, "stored": stored}
    headers = {"Connection": "close"} if close else None
    return JSONResponse(body, status_code=status, headers=headers)


def _header_map(request: Request, secret_headers: frozenset[str]) -> dict[str, str]:
    """Request headers as one JSON object (repeats joined by ", "), secrets left out."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name in secret_headers:
            continue
        value = raw_value.decode("latin-1").replace("\x00", "\ufffd")  # jsonb refuses NUL
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class WebhookReceiver:
    """The request handling behind the route; holds the settings, inbox and counters."""

    def __init__(self, settings: ReceiverSettings, inbox: Inbox, metrics: Metrics):
        self.settings = settings
        self.inbox = inbox
        self.writer = InboxWriter(inbox)
        self.metrics = metrics
        self.secret_headers = SECRET_HEADERS | {
            w.header_name for w in settings.workflows.values() if w.header_name
        }

    # -- the webhook -----------------------------------------------------------------------

    async def receive(self, workflow_key: str, request: Request) -> Response:
        received_at = datetime.now(UTC)
        workflow = self.settings.workflows.get(workflow_key)
        label = workflow_key if workflow else UNKNOWN_WORKFLOW
        try:
            if workflow is None:
                detail = f"no workflow {_quoted(workflow_key)} is configured"
                raise Refusal(404, "unknown_workflow", detail)
            body = await self._authenticated_body(workflow, request)
        except Refusal as refusal:
            self.metrics.rejected(refusal.reason, refusal.status, False, label)
            logger.info("refused %s (%s): %s", workflow_key, refusal.reason, refusal.detail)
            return _refusal_response(
                refusal.status, refusal.reason, refusal.detail, False, refusal.close
            )
        except ClientDisconnect:
            self.metrics.rejected("client_disconnected", CLIENT_CLOSED_REQUEST, False, label)
            return Response(status_code=400)  # nobody is left to read it
        headers = _header_map(request, self.secret_headers)
        delivery_id = request.headers.get("webhook-id")
        try:
            delivery = self._parse(workflow, request, delivery_id, headers, body, received_at)
        except Refusal as refusal:
            return await self._keep_rejection(
                workflow, refusal, delivery_id, headers, body, received_at
            )
        try:
            inbox_id = await self.writer.store(delivery)
        except sa.exc.SQLAlchemyError as exc:
            return self._warehouse_failed(workflow.key, "store a delivery", exc)
        if inbox_id is None:
            self.metrics.delivered("duplicate", workflow.key)
            return JSONResponse({"status": "duplicate", "delivery_id": delivery.delivery_id})
        self.metrics.delivered("accepted", workflow.key)
        return JSONResponse(
            {"status": "accepted", "delivery_id": delivery.delivery_id, "inbox_id": inbox_id},
            status_code=202,
        )

    async def _authenticated_body(self, workflow: Workflow, request: Request) -> bytes:
        """The body, once the headers authenticate the sender (steps 2 to 6)."""
        if workflow.key_bytes is None:
            raise Refusal(401, "no_secret", "this workflow has no secret configured: it refuses")
        headers = request.headers
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            raise Refusal(413, "body_too_large", self._too_large(), close=True)
        if workflow.auth == "header":
            given = headers.get(workflow.header_name)
            if given is None:
                detail = f"the {workflow.header_name} header is missing"
                raise Refusal(401, "missing_secret", detail)
            if not hmac.compare_digest(given.encode("latin-1"), workflow.key_bytes):
                raise Refusal(401, "bad_secret", f"the {workflow.header_name} header is wrong")
            return await self._read_body(request)
        webhook_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signature = headers.get("webhook-signature")
        missing = [
            name
            for name, value in (
                ("webhook-id", webhook_id),
                ("webhook-timestamp", timestamp),
                ("webhook-signature", signature),
            )
            if not value
        ]
        if missing:
            raise Refusal(401, "missing_signature_headers", f"missing {', '.join(missing)}")
        if not TIMESTAMP.match(timestamp):
            raise Refusal(401, "bad_timestamp", "webhook-timestamp is not Unix seconds")
        skew = abs(time.time() - int(timestamp))
        if skew > self.settings.timestamp_tolerance_seconds:
            raise Refusal(
                401,
                "stale_timestamp",
                f"webhook-timestamp is {skew:.0f} s from the receiver's clock (tolerance "
                f"{self.settings.timestamp_tolerance_seconds} s): a replay, or a clock to fix",
            )
        if not DELIVERY_ID.match(webhook_id):
            raise Refusal(400, "bad_delivery_id", self._bad_id())
        body = await self._read_body(request)
        if not signing.verify(workflow.key_bytes, webhook_id, timestamp, body, signature):
            raise Refusal(401, "bad_signature", "no webhook-signature entry matches")
        return body

    def _too_large(self) -> str:
        return f"the body is over {self.settings.max_body_bytes} bytes"

    @staticmethod
    def _bad_id() -> str:
        return "webhook-id must be 1-200 of A-Z a-z 0-9 _ : -"

    async def _read_body(self, request: Request) -> bytes:
        """Stream the body with a byte cap and a deadline (uvicorn enforces neither)."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Refusal(413, "body_too_large", self._too_large(), close=True)
                    chunks.append(chunk)
        except TimeoutError:
            raise Refusal(
                408,
                "body_timeout",
                f"the body did not arrive within {self.settings.body_timeout_seconds:g} s",
                close=True,
            ) from None
        return b"".join(chunks)

    def _parse(
        self,
        workflow: Workflow,
        request: Request,
        delivery_id: str | None,
        headers: dict[str, str],
        body: bytes,
        received_at: datetime,
    ) -> Delivery:
        """The inbox row of an authenticated delivery, or a Refusal (kept) saying what is wrong."""
        if not delivery_id:
            raise Refusal(400, "missing_delivery_id", "the webhook-id header is missing")
        if not DELIVERY_ID.match(delivery_id):
            raise Refusal(400, "bad_delivery_id", self._bad_id())
        if not _is_json_media_type(request.headers.get("content-type")):
            raise Refusal(415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal(400, "invalid_utf8", f"the body is not UTF-8 ({exc.reason})") from None
        try:
            payload = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise Refusal(400, "invalid_json", f"the body is not JSON ({exc})"[:300]) from None
        if not isinstance(payload, dict):
            raise Refusal(400, "not_a_json_object", "the body must be a JSON object")
        execution_id = self._execution_id(request.headers.get(EXECUTION_ID_HEADER), payload)
        return Delivery(
            delivery_id=delivery_id,
            workflow_key=workflow.key,
            execution_id=execution_id,
            received_at=received_at,
            headers=headers,
            body=text,
        )

    @staticmethod
    def _execution_id(in_header: str | None, payload: dict[str, Any]) -> str | None:
        """The n8n execution id: the header's, else the body's top-level `executionId`."""
        in_body = payload.get(EXECUTION_ID_FIELD)
        if isinstance(in_body, bool) or not isinstance(in_body, str | int | None):
            raise Refusal(400, "bad_execution_id", "executionId must be a string or integer")
        in_body = None if in_body is None else str(in_body)
        if in_header and in_body is not None and in_header != in_body:
            raise Refusal(
                400,
                "execution_id_mismatch",
                f"X-N8N-Execution-Id {_quoted(in_header)} and the body's executionId "
                f"{_quoted(in_body)} differ",
            )
        execution_id = in_header or in_body
        if execution_id is not None and not EXECUTION_ID.match(execution_id):
            raise Refusal(400, "bad_execution_id", "an execution id is 1-100 of A-Z a-z 0-9 _ -")
        return execution_id

    async def _keep_rejection(
        self,
        workflow: Workflow,
        refusal: Refusal,
        delivery_id: str | None,
        headers: dict[str, str],
        body: bytes,
        received_at: datetime,
    ) -> Response:
        rejection = Rejection(
            received_at=received_at,
            workflow_key=workflow.key,
            delivery_id=delivery_id[:200] if delivery_id else None,
            status_code=refusal.status,
            reason=f"{refusal.reason}: {refusal.detail}",
            headers=headers,
            body=body,
        )
        try:
            await run_in_threadpool(self.inbox.store_rejection, rejection)
        except sa.exc.SQLAlchemyError as exc:
            # Not kept, so not refused for good: the sender should try again.
            return self._warehouse_failed(workflow.key, "keep a rejected delivery", exc)
        self.metrics.rejected(refusal.reason, refusal.status, True, workflow.key)
        logger.info("kept rejected delivery %s of %s: %s", delivery_id, workflow.key, refusal)
        return _refusal_response(refusal.status, refusal.reason, refusal.detail, True)

    def _warehouse_failed(self, workflow_key: str, doing: str, exc: Exception) -> Response:
        self.metrics.rejected("warehouse_unavailable", 503, False, workflow_key)
        logger.error("could not %s: %s", doing, exc.__class__.__name__, exc_info=exc)
        return JSONResponse(
            {
                "status": "error",
                "reason": "warehouse_unavailable",
                "detail": "the delivery was not stored; send it again",
                "stored": False,
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    # -- health ----------------------------------------------------------------------------

    async def health(self) -> tuple[int, dict[str, Any]]:
        workflows = {
            key: "ready" if w.ready else (w.problem or "refusing")
            for key, w in sorted(self.settings.workflows.items())
        }
        try:
            await asyncio.wait_for(run_in_threadpool(self.inbox.check), HEALTH_TIMEOUT_SECONDS)
        except TimeoutError:
            warehouse = f"no answer within {HEALTH_TIMEOUT_SECONDS:g} s"
        except Exception as exc:  # whatever the driver raises, health answers
            warehouse = f"error: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
        else:
            return 200, {"status": "ok", "warehouse": "ok", "workflows": workflows}
        return 503, {"status": "unavailable", "warehouse": warehouse, "workflows": workflows}


class HeaderSizeLimit:
    """431 for requests whose headers exceed the limit, before any route sees them.

    uvicorn's httptools parser accepts headers of any size (h11 stops at 64 KiB with a 400),
    so the app draws its own line; a proxy in front should draw a tighter one.
    """

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics):
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                self.metrics.rejected("headers_too_large", 431, False, UNKNOWN_WORKFLOW)
                detail = f"request headers are {size} bytes, over {self.limit}"
                response = _refusal_response(431, "headers_too_large", detail, False, close=True)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _openapi_extra(settings: ReceiverSettings) -> dict[str, Any]:
    """What FastAPI cannot infer (the body is read raw): headers, body and auth."""
    shared_secret_headers = sorted(
        {w.header_name for w in settings.workflows.values() if w.header_name}
    )
    workflows = ", ".join(f"`{key}` ({w.auth})" for key, w in sorted(settings.workflows.items()))
    parameters = [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "description": "The delivery id: unique per delivery, the same on every retry "
            "(idempotency key). Becomes webhook_inbox.delivery_id.",
            "schema": {"type": "string", "pattern": DELIVERY_ID.pattern, "maxLength": 200},
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": False,
            "description": "standard_webhooks: Unix seconds of this attempt; refused when "
            f"more than {settings.timestamp_tolerance_seconds} s from the receiver's clock.",
            "schema": {"type": "string", "pattern": TIMESTAMP.pattern},
        },
        {
            "name": "webhook-signature",
            "in": "header",
            "required": False,
            "description": "standard_webhooks: space-separated `v1,<base64 HMAC-SHA256 of "
            "{webhook-id}.{webhook-timestamp}.{body}>` entries; one match suffices.",
            "schema": {"type": "string"},
        },
        {
            "name": "X-N8N-Execution-Id",
            "in": "header",
            "required": False,
            "description": "The n8n execution that sent this ({{ $execution.id }}); the gap "
            f"resync matches on it. A top-level `{EXECUTION_ID_FIELD}` in the body is used "
            "when the header is absent; both present must agree.",
            "schema": {"type": "string", "pattern": EXECUTION_ID.pattern},
        },
    ]
    for name in shared_secret_headers:
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": "header mode: the workflow's shared secret (n8n Header Auth).",
                "schema": {"type": "string"},
            }
        )
    return {
        "description": "Configured workflows: " + (workflows or "none") + ".",
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "description": f"The event, a JSON object in UTF-8, at most "
            f"{settings.max_body_bytes} bytes, sent within {settings.body_timeout_seconds:g} s.",
            "content": {
                "application/json": {"schema": {"type": "object", "additionalProperties": True}}
            },
        },
        "security": [{"standardWebhooks": []}, {"sharedSecret": []}],
    }


REFUSALS = {
    400: "Malformed delivery id, body not UTF-8 / JSON / an object, bad execution id",
    401: "Unknown or missing signature or secret, stale timestamp, workflow without a secret",
    404: "No such workflow",
    408: "The body did not arrive in time",
    413: "The body is over the size limit",
    415: "Content-Type is not application/json",
    431: "Request headers over the size limit",
    503: "The warehouse could not store the delivery; send it again (Retry-After)",
}


def _not_found(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _refusal_response(exc.status_code, reason, str(exc.detail), False)


def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return _refusal_response(400, "invalid_request", problems, False)


def create_app(
    settings: ReceiverSettings | None = None,
    *,
    engine: sa.Engine | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The receiver app. Defaults: settings from the environment (`ReceiverSettings.from_env`),
    an engine on `settings.warehouse_url` (disposed on shutdown), fresh counters."""
    settings = settings or ReceiverSettings.from_env()
    owns_engine = engine is None
    engine = engine or create_warehouse_engine(settings.warehouse_url)
    metrics = metrics or Metrics(os.environ.get(METRICS_DIR_ENV))
    receiver = WebhookReceiver(settings, Inbox(engine), metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        flusher = asyncio.create_task(_flush_metrics(metrics))
        logger.info("receiver writing to %s", redacted(settings.warehouse_url))
        try:
            yield
        finally:
            flusher.cancel()
            metrics.flush()
            if owns_engine:
                engine.dispose()

    app = FastAPI(
        title="sync_platform n8n webhook receiver",
        version="1",
        description=(
            "Durable inbox for n8n workflow webhooks: a delivery is committed to the "
            "warehouse before any 2xx. See docs/sources/n8n.md."
        ),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    app.add_exception_handler(StarletteHTTPException, _not_found)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    refusal_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": Refused, "description": text} for code, text in REFUSALS.items()
    }

    @app.post(
        WEBHOOK_PATH,
        status_code=202,
        summary="Receive one n8n webhook delivery",
        response_model=Accepted,
        responses={
            200: {"model": Duplicate, "description": "Already stored (a retry): stored once"},
            202: {"model": Accepted, "description": "Stored in the inbox (committed)"},
            **refusal_responses,
        },
        openapi_extra=_openapi_extra(settings),
    )
    async def receive_webhook(workflow_key: str, request: Request) -> Response:
        return await receiver.receive(workflow_key, request)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The warehouse does not answer"}},
        summary="Receiver and warehouse reachable",
    )
    async def healthz() -> Response:
        status, body = await receiver.health()
        return JSONResponse(body, status_code=status)

    @app.get(
        "/metrics",
        summary="Counters: accepted, duplicate, rejected by reason",
        responses={
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
                "description": "Prometheus text (format=prometheus) or JSON (format=json)",
            },
            400: {"model": Refused, "description": "Unknown format"},
        },
    )
    async def metrics_endpoint(
        format: Annotated[Literal["prometheus", "json"], Query()] = "prometheus",
    ) -> Response:
        if format == "json":
            return JSONResponse(metrics.as_json())
        return PlainTextResponse(
            metrics.as_prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app.openapi_schema = None
    _add_security_schemes(app, settings)
    app.add_middleware(HeaderSizeLimit, limit=settings.max_header_bytes, metrics=metrics)
    return app


def _add_security_schemes(app: FastAPI, settings: ReceiverSettings) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for operations in schema["paths"].values():
                for described in operations.values():
                    # Validation errors are answered 400 (see _invalid_request), never 422.
                    described["responses"].pop("422", None)
            operation = schema["paths"][WEBHOOK_PATH]["post"]
            for parameter in operation["parameters"]:
                if parameter["in"] == "path" and parameter["name"] == "workflow_key":
                    # The configured workflows; any other key is answered 404.
                    parameter["schema"]["enum"] = sorted(settings.workflows)
            header = sorted(
                {w.header_name for w in settings.workflows.values() if w.header_name}
            ) or ["x-webhook-secret"]
            schema.setdefault("components", {})["securitySchemes"] = {
                "standardWebhooks": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "HMAC-SHA256 per the Standard Webhooks spec (whsec_ secret).",
                },
                "sharedSecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": header[0],
                    "description": "header mode: the workflow's shared secret.",
                },
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _flush_metrics(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(METRICS_FLUSH_SECONDS)
        try:
            metrics.flush()
        except OSError:
            logger.warning("could not write receiver metrics", exc_info=True)


def create_app_from_env() -> FastAPI:
    """uvicorn factory (`--factory`): every setting from the environment."""
    return create_app()
