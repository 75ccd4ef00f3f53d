"""The n8n webhook receiver over real HTTP (uvicorn on a free loopback port), on SQLite and
PostgreSQL: durable before 2xx, stored once, every refusal class, limits, health, counters,
and crashes that lose nothing and duplicate nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sync_platform.inbox.store import AFTER_COMMIT, BEFORE_COMMIT, Delivery, Inbox
from sync_platform.receiver import ReceiverSettings, signed_headers
from sync_platform.receiver.signing import secret_key, verify
from sync_platform.settings import CRASHPOINT_ENV, WAREHOUSE_URL_ENV
from sync_platform.warehouse.platform_tables import webhook_inbox, webhook_rejections
from sync_platform_simulator.background_server import BackgroundServer, free_port
from sync_platform_tests.servers import receiver_server

SECRET = "whsec_" + base64.b64encode(b"test-form-submission-signing-key-0123").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-entirely-signing-key-99").decode()
SHARED = "test-order-update-shared-secret-0123456789"
ENV = {
    "N8N_WEBHOOK_SECRET_FORM_SUBMISSION": SECRET,
    "N8N_WEBHOOK_SECRET_ORDER_UPDATE": SHARED,
    # new_lead has no secret: it must refuse everything
}
FORM = "/webhooks/n8n/form_submission"
ORDERS = "/webhooks/n8n/order_update"
LEADS = "/webhooks/n8n/new_lead"
EVENT = {"event": "form_submission", "eventId": "evt_1", "fields": {"name": "Ava Nguyen"}}
BODY = json.dumps(EVENT).encode()
MAX_BODY = 64 * 1024
BODY_TIMEOUT = 1.0


def signed(
    body: bytes = BODY,
    delivery_id: str = "n8n-wf-1001",
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    execution_id: str | None = "1001",
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers of a correctly signed Standard Webhooks delivery (override to break one)."""
    headers = signed_headers(secret, delivery_id, timestamp or int(time.time()), body)
    headers["content-type"] = content_type
    if execution_id is not None:
        headers["x-n8n-execution-id"] = execution_id
    return headers


def shared(delivery_id: str = "n8n-wf-2001", secret: str = SHARED) -> dict[str, str]:
    return {
        "x-webhook-secret": secret,
        "webhook-id": delivery_id,
        "content-type": "application/json",
        "x-n8n-execution-id": "2001",
    }


def settings_for(warehouse_url: str, **changes) -> ReceiverSettings:
    settings = ReceiverSettings.from_env(ENV, warehouse_url=warehouse_url)
    return dataclasses.replace(
        settings, max_body_bytes=MAX_BODY, body_timeout_seconds=BODY_TIMEOUT, **changes
    )


@pytest.fixture
def receiver(warehouse_url: str) -> Iterator[BackgroundServer]:
    with receiver_server(settings_for(warehouse_url)) as server:
        yield server


@pytest.fixture
def client(receiver: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=30) as http:
        yield http


def inbox_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(webhook_inbox).order_by(webhook_inbox.c.id))
        return [dict(row) for row in rows.mappings()]


def rejection_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(webhook_rejections).order_by(webhook_rejections.c.id))
        return [dict(row) for row in rows.mappings()]


def counters(client: httpx.Client) -> dict:
    return client.get("/metrics", params={"format": "json"}).json()


# -- accepted, durable, once ------------------------------------------------------------------


def test_accepted_delivery_is_in_the_inbox_when_the_answer_arrives(client, engine):
    response = client.post(FORM, content=BODY, headers=signed())

    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "accepted" and answer["delivery_id"] == "n8n-wf-1001"
    (row,) = inbox_rows(engine)  # read on another connection: committed, not just written
    assert answer["inbox_id"] == row["id"]
    assert row["delivery_id"] == "n8n-wf-1001"
    assert row["workflow_key"] == "form_submission"
    assert row["execution_id"] == "1001"
    assert row["origin"] == "receiver" and row["status"] == "pending"
    assert row["body"] == BODY.decode()  # the raw text, byte for byte
    assert row["processed_at"] is None and row["received_at"] is not None
    assert row["headers"]["webhook-id"] == "n8n-wf-1001"
    assert row["headers"]["x-n8n-execution-id"] == "1001"
    assert "webhook-signature" not in row["headers"]  # secrets never stored


def test_same_delivery_twice_is_stored_once_and_answered_2xx_both_times(client, engine):
    first = client.post(FORM, content=BODY, headers=signed())
    # n8n's retry: same webhook-id and body, a later timestamp and so a new signature
    retry = client.post(FORM, content=BODY, headers=signed(timestamp=int(time.time()) + 2))

    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (retry.status_code, retry.json()) == (
        200,
        {"status": "duplicate", "delivery_id": "n8n-wf-1001"},
    )
    assert len(inbox_rows(engine)) == 1


def test_one_delivery_racing_itself_is_stored_once(client, engine):
    """20 copies at once: the unique constraint, not a read-then-write, picks one winner."""

    def send(_: int) -> httpx.Response:
        return client.post(FORM, content=BODY, headers=signed())

    with ThreadPoolExecutor(20) as pool:
        answers = [r.json()["status"] for r in pool.map(send, range(20))]

    assert sorted(answers) == ["accepted"] + ["duplicate"] * 19
    assert len(inbox_rows(engine)) == 1


def test_many_deliveries_at_once_are_each_stored_once(client, engine):
    """Group commit: concurrent deliveries share transactions, each still answered after its
    own row is committed, duplicates inside one batch included."""
    ids = [f"n8n-wf-{i % 150}" for i in range(200)]  # 50 repeats

    def send(delivery_id: str) -> httpx.Response:
        body = json.dumps({"eventId": delivery_id}).encode()
        return client.post(FORM, content=body, headers=signed(body, delivery_id))

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, ids))

    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("accepted") == 150 and statuses.count("duplicate") == 50
    rows = inbox_rows(engine)
    assert sorted(r["delivery_id"] for r in rows) == sorted(set(ids))
    accepted_ids = {a.json()["inbox_id"] for a in answers if a.status_code == 202}
    assert accepted_ids == {r["id"] for r in rows}


def _delivery(delivery_id: str | None, body: str = "{}") -> Delivery:
    return Delivery(
        delivery_id=delivery_id,  # type: ignore[arg-type]
        workflow_key="form_submission",
        execution_id="1",
        received_at=datetime.now(UTC),
        headers={"webhook-id": str(delivery_id)},
        body=body,
    )


def test_a_batch_stores_the_first_of_repeated_ids_and_survives_a_bad_row(engine):
    """One transaction for many deliveries: a repeat inside the batch is a duplicate of the
    first, and a row the database refuses fails alone, not its neighbours."""
    inbox = Inbox(engine)
    inbox.store(_delivery("already-in"))

    results = inbox.store_batch(
        [
            _delivery("a", '{"n": 1}'),
            _delivery("a", '{"n": 2}'),
            _delivery(None),  # NOT NULL violation
            _delivery("already-in"),
            _delivery("b"),
        ]
    )

    rows = {row["delivery_id"]: row for row in inbox_rows(engine)}
    assert sorted(rows) == ["a", "already-in", "b"]
    assert results[0] == rows["a"]["id"] and rows["a"]["body"] == '{"n": 1}'
    assert results[1] is None and results[3] is None
    assert isinstance(results[2], sa.exc.IntegrityError)
    assert results[4] == rows["b"]["id"]


def test_execution_id_from_the_body_when_no_header(client, engine):
    body = json.dumps({"executionId": 777, "x": 1}).encode()
    response = client.post(FORM, content=body, headers=signed(body, "d-777", execution_id=None))

    assert response.status_code == 202
    assert inbox_rows(engine)[0]["execution_id"] == "777"


def test_header_auth_workflow_accepts_the_shared_secret(client, engine):
    response = client.post(ORDERS, content=BODY, headers=shared())

    assert response.status_code == 202
    (row,) = inbox_rows(engine)
    assert (row["workflow_key"], row["delivery_id"], row["execution_id"]) == (
        "order_update",
        "n8n-wf-2001",
        "2001",
    )
    assert "x-webhook-secret" not in row["headers"]


# -- refusals -------------------------------------------------------------------------------


def _stale() -> dict[str, str]:
    return signed(timestamp=int(time.time()) - 301)  # a captured delivery, replayed late


def _future() -> dict[str, str]:
    return signed(timestamp=int(time.time()) + 301)


def _without(name: str) -> dict[str, str]:
    headers = signed()
    del headers[name]
    return headers


def _tampered() -> tuple[bytes, dict[str, str]]:
    return BODY.replace(b"Ava", b"Eve"), signed()  # signature of the original body


def _extra_signature_entries() -> dict[str, str]:
    headers = signed()
    headers["webhook-signature"] = "v1,bm9wZQ== v1a,c29tZXRoaW5n " + headers["webhook-signature"]
    return headers


# name → (path, body, headers, status, reason), built when the test runs (fresh timestamps);
# none of these senders proved who they are.
UNAUTHENTICATED = {
    "unknown workflow": lambda: (
        "/webhooks/n8n/no_such_flow", BODY, signed(), 404, "unknown_workflow"),
    "workflow without a secret": lambda: (LEADS, BODY, signed(), 401, "no_secret"),
    "signed with another secret": lambda: (
        FORM, BODY, signed(secret=OTHER_SECRET), 401, "bad_signature"),
    "tampered body": lambda: (FORM, *_tampered(), 401, "bad_signature"),
    "replayed old timestamp": lambda: (FORM, BODY, _stale(), 401, "stale_timestamp"),
    "timestamp from the future": lambda: (FORM, BODY, _future(), 401, "stale_timestamp"),
    "timestamp not a number": lambda: (
        FORM, BODY, {**signed(), "webhook-timestamp": "yesterday"}, 401, "bad_timestamp"),
    "missing webhook-id": lambda: (
        FORM, BODY, _without("webhook-id"), 401, "missing_signature_headers"),
    "missing webhook-timestamp": lambda: (
        FORM, BODY, _without("webhook-timestamp"), 401, "missing_signature_headers"),
    "missing webhook-signature": lambda: (
        FORM, BODY, _without("webhook-signature"), 401, "missing_signature_headers"),
    "no headers at all": lambda: (FORM, BODY, {}, 401, "missing_signature_headers"),
    "delivery id with a dot": lambda: (
        FORM, BODY, signed(delivery_id="a.b"), 400, "bad_delivery_id"),
    "header mode, wrong secret": lambda: (
        ORDERS, BODY, shared(secret="x" * 42), 401, "bad_secret"),
    "header mode, no secret header": lambda: (
        ORDERS, BODY, {"webhook-id": "x", "content-type": "application/json"}, 401,
        "missing_secret"),
}  # fmt: skip


@pytest.mark.parametrize("case", UNAUTHENTICATED)
def test_unauthenticated_junk_is_refused_counted_and_never_stored(client, engine, case):
    path, body, headers, status, reason = UNAUTHENTICATED[case]()

    response = client.post(path, content=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason and response.json()["stored"] is False
    assert inbox_rows(engine) == [] and rejection_rows(engine) == []
    assert counters(client)["rejected_by_reason"] == {reason: 1}


def test_a_rotated_key_still_verifies_among_several_signature_entries(client, engine):
    response = client.post(FORM, content=BODY, headers=_extra_signature_entries())

    assert response.status_code == 202
    assert len(inbox_rows(engine)) == 1


NESTED = b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}"

# (body, content type, status, reason): authenticated senders whose delivery is still wrong.
AUTHENTICATED = {
    "not JSON": (b"name=Ava&email=ava@example.com", "application/json", 400, "invalid_json"),
    "truncated JSON": (BODY[:-5], "application/json", 400, "invalid_json"),
    "invalid UTF-8": (b'{"name": "Ava \xff\xfe"}', "application/json", 400, "invalid_utf8"),
    "JSON array, not an object": (b"[1, 2, 3]", "application/json", 400, "not_a_json_object"),
    "NaN is not JSON": (b'{"total": NaN}', "application/json", 400, "invalid_json"),
    "nested too deep": (NESTED, "application/json", 400, "invalid_json"),
    "form content type": (BODY, "application/x-www-form-urlencoded", 415,
                          "unsupported_media_type"),
    "JSON in Latin-1": (BODY, "application/json; charset=latin-1", 415, "unsupported_media_type"),
    "no content type": (BODY, "", 415, "unsupported_media_type"),
    "execution ids disagree": (json.dumps({"executionId": "999"}).encode(), "application/json",
                               400, "execution_id_mismatch"),
    "execution id not a string": (json.dumps({"executionId": {"id": 1}}).encode(),
                                  "application/json", 400, "bad_execution_id"),
}  # fmt: skip


@pytest.mark.parametrize("case", AUTHENTICATED)
def test_authenticated_but_malformed_delivery_is_kept_with_its_reason(client, engine, case):
    body, content_type, status, reason = AUTHENTICATED[case]
    headers = signed(body, "n8n-wf-3001", content_type=content_type)
    if not content_type:
        del headers["content-type"]

    response = client.post(FORM, content=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason and response.json()["stored"] is True
    assert inbox_rows(engine) == []
    (kept,) = rejection_rows(engine)
    assert kept["body"] == body  # nothing lost: the raw bytes, even when not UTF-8
    assert (kept["workflow_key"], kept["delivery_id"], kept["status_code"]) == (
        "form_submission",
        "n8n-wf-3001",
        status,
    )
    assert kept["reason"].startswith(reason)
    assert kept["headers"]["webhook-id"] == "n8n-wf-3001"
    assert "webhook-signature" not in kept["headers"]


def test_header_mode_delivery_without_an_id_is_kept(client, engine):
    headers = shared()
    del headers["webhook-id"]

    response = client.post(ORDERS, content=BODY, headers=headers)

    assert (response.status_code, response.json()["reason"]) == (400, "missing_delivery_id")
    (kept,) = rejection_rows(engine)
    assert kept["delivery_id"] is None and kept["body"] == BODY
    assert "x-webhook-secret" not in kept["headers"]


def test_declared_body_over_the_limit_is_refused_before_it_is_read(client, engine):
    body = b'{"x": "' + b"a" * MAX_BODY + b'"}'

    response = client.post(FORM, content=body, headers=signed(body))

    assert (response.status_code, response.json()["reason"]) == (413, "body_too_large")
    assert inbox_rows(engine) == [] and rejection_rows(engine) == []


def test_streamed_body_over_the_limit_is_cut_off(client, engine):
    """No Content-Length (chunked): the running byte count stops it."""

    def endless():
        chunk = b"a" * 8192
        for _ in range(1000):  # 8 MB if nobody stops it
            yield chunk

    response = client.post(FORM, content=endless(), headers=signed(b"irrelevant"))

    assert (response.status_code, response.json()["reason"]) == (413, "body_too_large")
    assert inbox_rows(engine) == [] and rejection_rows(engine) == []


def test_huge_headers_are_431_not_a_server_error(client, engine):
    headers = signed() | {"x-padding": "p" * 100_000}

    response = client.post(FORM, content=BODY, headers=headers)

    assert response.status_code == 431
    assert response.json()["reason"] == "headers_too_large"
    assert inbox_rows(engine) == []


def _raw_request(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(head)
    return connection


def _http_head(body_length: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {FORM} HTTP/1.1", "Host: receiver", f"Content-Length: {body_length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_slow_body_is_cut_off_at_the_deadline(receiver, client, engine):
    """A client that sends 10 of 100 announced bytes and stalls gets 408 at the deadline,
    not a worker held forever (uvicorn has no receive deadline of its own)."""
    connection = _raw_request(receiver.url, _http_head(len(BODY), signed()) + BODY[:10])
    started = time.monotonic()
    try:
        answer = connection.recv(65536).decode()
    finally:
        connection.close()
    waited = time.monotonic() - started

    assert answer.startswith("HTTP/1.1 408"), answer
    assert '"reason":"body_timeout"' in answer
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + 5
    assert inbox_rows(engine) == []
    assert counters(client)["rejected_by_reason"] == {"body_timeout": 1}


# -- health and counters ----------------------------------------------------------------------


def test_healthz_up_names_workflows_that_refuse(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and health["warehouse"] == "ok"
    assert health["workflows"]["form_submission"] == "ready"
    assert "N8N_WEBHOOK_SECRET_NEW_LEAD" in health["workflows"]["new_lead"]


def _unreachable(warehouse_url: str, tmp_path: Path) -> str:
    url = sa.make_url(warehouse_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path}"  # a directory is no database
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    return url.set(port=closed_port).render_as_string(hide_password=False)


def test_healthz_down_says_the_warehouse_does_not_answer(warehouse_url, tmp_path):
    with (
        receiver_server(settings_for(_unreachable(warehouse_url, tmp_path))) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        health = http.get("/healthz")
        delivery = http.post(FORM, content=BODY, headers=signed())

    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["warehouse"].startswith("error: OperationalError")
    # a delivery it cannot store is not acknowledged: the sender will retry
    assert delivery.status_code == 503
    assert delivery.headers["retry-after"] == "5"
    assert delivery.json()["reason"] == "warehouse_unavailable"


def test_healthz_down_when_the_inbox_table_is_missing(tmp_path):
    with (
        receiver_server(settings_for(f"sqlite:///{tmp_path / 'empty.db'}")) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        health = http.get("/healthz")

    assert health.status_code == 503
    assert "webhook_inbox" in health.json()["warehouse"]


def test_metrics_count_accepted_duplicate_and_rejected_by_reason(client):
    client.post(FORM, content=BODY, headers=signed())
    client.post(FORM, content=BODY, headers=signed())
    client.post(FORM, content=b"{", headers=signed(b"{", "n8n-wf-2"))
    client.post(FORM, content=BODY, headers=_stale())
    client.post("/webhooks/n8n/nope", content=BODY, headers=signed())

    figures = counters(client)
    text = client.get("/metrics")

    assert (figures["accepted"], figures["duplicate"], figures["rejected"]) == (1, 1, 3)
    assert figures["rejected_stored"] == 1
    assert figures["rejected_by_reason"] == {
        "invalid_json": 1,
        "stale_timestamp": 1,
        "unknown_workflow": 1,
    }
    assert figures["by_workflow"]["form_submission"] == {
        "accepted": 1,
        "duplicate": 1,
        "rejected": 2,
    }
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        'sync_platform_webhook_deliveries_total{outcome="accepted",workflow="form_submission"} 1'
        in text.text
    )
    assert (
        'sync_platform_webhook_rejections_total{reason="invalid_json",status="400",'
        'stored="true",workflow="form_submission"} 1' in text.text
    )


# -- crashes: no loss, no duplicate -----------------------------------------------------------


class ReceiverProcess:
    """`sync-platform receiver` in its own process, so a test can SIGKILL it."""

    def __init__(
        self,
        warehouse_url: str,
        crashpoint: str | None = None,
        *,
        environment: dict[str, str] | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **(environment or ENV), WAREHOUSE_URL_ENV: warehouse_url}
        env.pop(CRASHPOINT_ENV, None)
        if crashpoint:
            env[CRASHPOINT_ENV] = crashpoint
        command = Path(sys.executable).parent / "sync-platform"
        self.process = subprocess.Popen(
            [str(command), "receiver", "--port", str(self.port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receiver exited: {self.process.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("receiver did not start within 60 s")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process.stderr.close()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


@pytest.mark.parametrize(
    ("crashpoint", "rows_after_crash", "retry_answer"),
    [(BEFORE_COMMIT, 0, "accepted"), (AFTER_COMMIT, 1, "duplicate")],
)
def test_receiver_killed_around_the_commit_loses_nothing_and_duplicates_nothing(
    warehouse_url, engine, crashpoint, rows_after_crash, retry_answer
):
    with ReceiverProcess(warehouse_url, crashpoint) as doomed:
        with pytest.raises(httpx.TransportError):  # the connection dies, no answer at all
            httpx.post(doomed.url + FORM, content=BODY, headers=signed(), timeout=30)
        assert doomed.process.wait(timeout=30) == -signal.SIGKILL

    assert len(inbox_rows(engine)) == rows_after_crash

    with ReceiverProcess(warehouse_url) as restarted:  # the sender tries again
        retry = httpx.post(restarted.url + FORM, content=BODY, headers=signed(), timeout=30)

    assert retry.status_code in (200, 202) and retry.json()["status"] == retry_answer
    (row,) = inbox_rows(engine)
    assert (row["delivery_id"], row["body"]) == ("n8n-wf-1001", BODY.decode())


def test_receiver_killed_mid_body_stores_nothing_and_the_retry_once(warehouse_url, engine):
    with ReceiverProcess(warehouse_url) as doomed:
        connection = _raw_request(doomed.url, _http_head(len(BODY), signed()) + BODY[:20])
        time.sleep(0.3)  # the receiver is waiting for the rest of the body
        doomed.kill()
        connection.close()

    assert inbox_rows(engine) == []

    with ReceiverProcess(warehouse_url) as restarted:
        first = httpx.post(restarted.url + FORM, content=BODY, headers=signed(), timeout=30)
        again = httpx.post(restarted.url + FORM, content=BODY, headers=signed(), timeout=30)

    assert (first.status_code, again.status_code) == (202, 200)
    assert len(inbox_rows(engine)) == 1


def test_the_receiver_verifies_the_standard_webhooks_published_test_vector():
    """The specification's own vector (standard-webhooks reference libraries'
    `test_sign_function`), independently of the simulator that signs the tests' deliveries."""
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    body = b'{"test": 2432232314}'
    assert verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, header)
    assert not verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body, header)


def test_refusals_quote_at_most_a_short_prefix_of_what_the_client_sent(client):
    """An unknown workflow key and a disagreeing execution id are quoted, never echoed whole."""
    long_key = "x" * 5000
    unknown = client.post(f"/webhooks/n8n/{long_key}", content=BODY, headers=signed())
    body = json.dumps({"executionId": "9" * 100}).encode()
    mismatch = client.post(
        FORM, content=body, headers=signed(body, "n8n-wf-3002", content_type="application/json")
    )

    assert unknown.status_code == 404 and mismatch.status_code == 400
    assert len(unknown.text) < 300 and "(5,000 chars)" in unknown.json()["detail"]
    assert mismatch.json()["reason"] == "execution_id_mismatch"
    assert len(mismatch.json()["detail"]) < 200 and "(100 chars)" in mismatch.json()["detail"]


def _closed_by_peer(sock) -> bool:
    """Whether the server closed this connection (readable, and nothing more to read)."""
    import select

    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1) == b""


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_a_client_slow_to_send_its_headers_is_cut_off_and_others_are_served(warehouse_url):
    """Headers sent a byte at a time, and a connection that sends nothing, are closed at the
    header deadline; a normal delivery on another connection is served meanwhile."""
    import socket

    with receiver_server(settings_for(warehouse_url, header_timeout_seconds=1.0)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        trickle = socket.create_connection((host, int(port)))
        silent = socket.create_connection((host, int(port)))
        request = b"POST /webhooks/n8n/form_submission HTTP/1.1\r\nHost: x\r\n" * 20
        started, closed_after = time.monotonic(), None
        for byte in request:
            try:
                trickle.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            if _closed_by_peer(trickle):
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
        with httpx.Client(base_url=server.url) as client:
            served = client.post(FORM, content=BODY, headers=signed())
        silent.settimeout(3)
        silent_closed = silent.recv(1) == b""  # closed by the server, nothing sent
        trickle.close()
        silent.close()

    assert closed_after is not None and 0.9 <= closed_after < 3
    assert silent_closed
    assert served.status_code in (200, 202)
