"""Schemathesis against the receiver's own OpenAPI schema, over real HTTP: whatever it is sent,
it answers with a documented status, content type and body shape, and never a 5xx.

Generated requests rarely carry a valid signature, so every generated case is also sent a
second time correctly authenticated (the body re-serialized and signed for a standard_webhooks
workflow, or the shared secret for a header one): the fuzzer's headers, ids and bodies then
reach the parsing and the inbox write, not just the signature check.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sync_platform.receiver import ReceiverSettings, signed_headers
from sync_platform_simulator.background_server import BackgroundServer
from sync_platform_tests.servers import receiver_server

SECRET = "whsec_" + base64.b64encode(b"fuzz-form-submission-signing-key-0123").decode()
SHARED = "fuzz-order-update-shared-secret-0123456789"
ENV = {"N8N_WEBHOOK_SECRET_FORM_SUBMISSION": SECRET, "N8N_WEBHOOK_SECRET_ORDER_UPDATE": SHARED}
MAX_EXAMPLES = 50  # per generation mode and dialect: about 10 s in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def receiver(warehouse_url: str) -> Iterator[BackgroundServer]:
    with receiver_server(ReceiverSettings.from_env(ENV, warehouse_url=warehouse_url)) as server:
        yield server


@pytest.fixture
def http(receiver: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=30) as client:
        yield client


def _authenticated_headers(case, body: bytes) -> tuple[str, dict[str, str]]:
    """The case's headers made valid for a configured workflow (its other headers kept)."""
    headers = {
        k: v
        for k, v in (case.headers or {}).items()
        if k.lower() not in ("content-length", "content-type", "host", "transfer-encoding")
    }
    headers["content-type"] = "application/json"
    delivery_id = str(headers.pop("webhook-id", "") or "fuzz-0")
    if len(body) % 2:  # half of the cases in each auth mode
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
        return "/webhooks/n8n/order_update", headers | {
            "webhook-id": delivery_id,
            "x-webhook-secret": SHARED,
        }
    signed = signed_headers(SECRET, delivery_id, int(time.time()), body)
    headers = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
    return "/webhooks/n8n/form_submission", headers | signed


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_receiver_fail(receiver, http, mode):
    # Loaded in the test, not with schemathesis.pytest.from_fixture: that loader reads a
    # private pytest attribute pytest 9 no longer has.
    schema = schemathesis.openapi.from_url(f"{receiver.url}/openapi.json")

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case) -> None:
        response = case.call_and_validate(base_url=receiver.url, checks=CHECKS, timeout=30)
        assert response.status_code < 500, response.text
        if case.path == "/webhooks/n8n/{workflow_key}":
            _send_authenticated(http, case)

    no_server_error()


def _body_bytes(body: object) -> bytes:
    """The generated body as the bytes to sign and send (negative cases may be raw)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body, default=str).encode()


def _send_authenticated(http: httpx.Client, case) -> None:
    body = _body_bytes(case.body)
    path, headers = _authenticated_headers(case, body)
    try:
        answer = http.post(path, content=body, headers=headers)
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # a header value the HTTP client itself refuses to send
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (200, 202, 400, 401, 413, 415, 431), answer.text
    assert answer.headers["content-type"] == "application/json"
