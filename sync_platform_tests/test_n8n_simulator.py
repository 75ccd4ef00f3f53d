"""The simulated n8n over real HTTP: its sender (signed deliveries, drops, duplicates, delays,
retries) against the real receiver on both dialects, and its public executions API (auth,
cursor paging, includeData, retention) as the gap resync will read it."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from sync_platform.receiver.signing import secret_key, verify
from sync_platform.warehouse.platform_tables import webhook_inbox
from sync_platform_simulator.n8n import SEND_NODE, default_workflow_id

API = "/n8n/api/v1"
KEY = {"X-N8N-API-KEY": "sim-n8n-key"}
WORKFLOWS = ["form_submission", "new_lead", "order_update"]


def closed_port_url() -> str:
    """A loopback address nobody listens on: a receiver that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def executions_page(simulator, **params) -> dict:
    response = simulator.http.get(f"{API}/executions", params=params, headers=KEY)
    assert response.status_code == 200, response.text
    return response.json()


def all_execution_ids(simulator, **params) -> list[str]:
    ids, cursor = [], None
    while True:
        page = executions_page(simulator, **params, **({"cursor": cursor} if cursor else {}))
        ids += [execution["id"] for execution in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return ids


def sent_item(execution: dict) -> dict:
    """What the gap resync extracts: the item that entered the "Send to warehouse" node."""
    run = execution["data"]["resultData"]["runData"]
    previous = run[SEND_NODE][0]["source"][0]["previousNode"]
    return run[previous][0]["data"]["main"][0][0]["json"]


def inbox(engine: sa.Engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(webhook_inbox)).mappings()]


# -- the sender -------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_sender_delivers_all_but_the_dropped_and_duplicates_are_stored_once(
    simulator, n8n_receiver, engine, workflow
):
    report = simulator.send_webhooks(
        n8n_receiver.url, workflow, 200, duplicate_rate=0.1, drop_rate=0.05, seed=7
    )

    executions, dropped = set(report["executions"]), set(report["dropped"])
    assert len(executions) == 200 and report["failed"] == []
    assert 3 <= len(dropped) <= 25 and 5 <= len(report["duplicated"]) <= 40
    assert set(report["delivered"]) == executions - dropped
    assert report["responses"] == {
        "200": len(report["duplicated"]),  # the second copy: a duplicate, still 2xx
        "202": 200 - len(dropped),
    }
    rows = inbox(engine)
    assert len(rows) == 200 - len(dropped)  # every duplicate stored once
    assert {r["execution_id"] for r in rows} == executions - dropped
    assert {r["workflow_key"] for r in rows} == {workflow}
    sent = {e["id"]: e for e in simulator.n8n("GET", "/executions")}
    for row in rows:
        assert json.loads(row["body"]) == sent[row["execution_id"]]["event"]
        assert row["delivery_id"] == sent[row["execution_id"]]["webhook_id"]


def test_same_seed_same_executions_drops_and_payloads(simulator):
    def run() -> tuple:
        simulator.reset()
        report = simulator.send_webhooks(
            closed_port_url(), "new_lead", 60, drop_rate=0.2, duplicate_rate=0.2, seed=11,
            max_tries=1,
        )  # fmt: skip
        events = [  # all but the timestamps, which follow the clock
            {k: v for k, v in e["event"].items() if not k.endswith("At")}
            for e in simulator.n8n("GET", "/executions")
        ]
        return report["dropped"], report["duplicated"], events

    first, second = run(), run()

    assert first == second
    assert len({e["eventId"] for e in first[2]}) == 60  # one unique event per execution


def test_delay_holds_each_delivery_back(simulator):
    started = time.monotonic()
    simulator.send_webhooks(
        closed_port_url(), "form_submission", 3, delay_ms=200, concurrency=1, max_tries=1
    )
    assert time.monotonic() - started >= 0.6


def test_a_receiver_that_is_down_gets_fixed_interval_retries_then_n8n_moves_on(simulator):
    report = simulator.send_webhooks(
        closed_port_url(), "order_update", 4, max_tries=3, wait_between_tries_ms=50
    )

    assert report["failed"] == report["executions"] and report["delivered"] == []
    assert report["requests"] == 12 and report["responses"] == {"error": 12}
    # "On Error: Continue": n8n calls these successful, so only the gap resync finds them
    listed = executions_page(simulator, status="success")["data"]
    assert sorted(e["id"] for e in listed) == sorted(report["executions"])


def test_without_continue_on_fail_an_undelivered_execution_is_an_error(simulator):
    simulator.n8n("POST", "/reset", {"continue_on_fail": False})
    report = simulator.send_webhooks(closed_port_url(), "new_lead", 2, max_tries=1)

    assert executions_page(simulator, status="success")["data"] == []
    errors = executions_page(simulator, status="error")["data"]
    assert sorted(e["id"] for e in errors) == sorted(report["executions"])


# -- the public executions API ----------------------------------------------------------------


def test_api_key_is_required(simulator):
    missing = simulator.http.get(f"{API}/executions")
    wrong = simulator.http.get(f"{API}/executions/1", headers={"X-N8N-API-KEY": "nope"})

    assert (missing.status_code, missing.json()) == (
        401,
        {"message": "'X-N8N-API-KEY' header required"},
    )
    assert (wrong.status_code, wrong.json()) == (401, {"message": "unauthorized"})


def test_executions_page_newest_first_at_most_250_following_next_cursor(simulator):
    target = closed_port_url()
    leads = simulator.send_webhooks(target, "new_lead", 420, max_tries=1, concurrency=64)
    forms = simulator.send_webhooks(target, "form_submission", 180, max_tries=1, concurrency=64)

    first = executions_page(simulator, limit=250)
    second = executions_page(simulator, cursor=first["nextCursor"])
    third = executions_page(simulator, cursor=second["nextCursor"])

    assert [len(p["data"]) for p in (first, second, third)] == [250, 250, 100]
    assert third["nextCursor"] is None
    ids = [int(e["id"]) for p in (first, second, third) for e in p["data"]]
    assert ids == sorted(ids, reverse=True) == list(range(600, 0, -1))
    assert json.loads(base64.b64decode(first["nextCursor"])) == {"lastId": "351", "limit": 250}
    assert first["data"][0].keys() >= {"id", "status", "startedAt", "stoppedAt", "workflowId"}
    assert "data" not in first["data"][0]
    lead_ids = all_execution_ids(simulator, workflowId=leads["workflow_id"], limit=100)
    assert sorted(lead_ids, key=int) == leads["executions"]
    assert len(all_execution_ids(simulator, workflowId=forms["workflow_id"])) == 180
    assert executions_page(simulator, workflowId="noSuchWorkflow") == {
        "data": [],
        "nextCursor": None,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 251}, "request/query/limit must be <= 250"),
        ({"limit": "ten"}, "request/query/limit must be number"),
        ({"cursor": "not-a-cursor"}, "An invalid cursor was provided"),
        ({"includeData": "maybe"}, "request/query/includeData must be boolean"),
        ({"status": "finished"}, "request/query/status must be equal to one of the allowed"),
    ],
)
def test_bad_list_parameters_are_400_with_n8n_messages(simulator, params, message):
    response = simulator.http.get(f"{API}/executions", params=params, headers=KEY)

    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_running_executions_are_not_listed(simulator):
    def slow_send() -> None:
        simulator.send_webhooks(closed_port_url(), "new_lead", 1, delay_ms=1500, max_tries=1)

    sender = threading.Thread(target=slow_send)
    sender.start()
    try:
        time.sleep(0.5)
        known = simulator.n8n("GET", "/executions")
        listed = executions_page(simulator)["data"]
    finally:
        sender.join()

    assert [e["status"] for e in known] == ["running"]
    assert listed == []
    assert [e["id"] for e in executions_page(simulator)["data"]] == [known[0]["id"]]


def test_include_data_holds_the_exact_payload_even_of_a_dropped_delivery(
    simulator, n8n_receiver, engine
):
    report = simulator.send_webhooks(n8n_receiver.url, "form_submission", 40, drop_rate=0.3, seed=3)
    dropped, delivered = report["dropped"][0], report["delivered"][0]
    secret = simulator.n8n("GET", "/environment")["N8N_WEBHOOK_SECRET_FORM_SUBMISSION"]

    full = simulator.http.get(
        f"{API}/executions/{dropped}", params={"includeData": "true"}, headers=KEY
    ).json()
    plain = simulator.http.get(f"{API}/executions/{dropped}", headers=KEY).json()
    item = sent_item(full)

    assert full["status"] == "success" and "data" not in plain
    assert full["workflowData"]["id"] == report["workflow_id"]
    assert item["webhookId"] == f"n8n-{report['workflow_id']}-{dropped}"
    assert json.loads(item["body"])["event"] == "form_submission"
    assert verify(  # the Crypto node's signature covers exactly this body
        secret_key(secret),
        item["webhookId"],
        str(item["timestamp"]),
        item["body"].encode(),
        "v1,"
        + full["data"]["resultData"]["runData"]["Sign"][0]["data"]["main"][0][0]["json"][
            "signature"
        ],
    )
    assert dropped not in {r["execution_id"] for r in inbox(engine)}
    stored = {r["execution_id"]: r for r in inbox(engine)}[delivered]
    delivered_item = sent_item(
        simulator.http.get(
            f"{API}/executions/{delivered}", params={"includeData": "true"}, headers=KEY
        ).json()
    )
    assert delivered_item["body"] == stored["body"]  # byte for byte what the receiver got
    assert delivered_item["webhookId"] == stored["delivery_id"]
    listed = executions_page(simulator, includeData="true", limit=1)["data"][0]
    assert sent_item(listed)["webhookId"].endswith(f"-{listed['id']}")


def test_unknown_execution_is_404(simulator):
    for execution_id in ("12345", "abc"):
        response = simulator.http.get(f"{API}/executions/{execution_id}", headers=KEY)
        assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


def test_executions_past_the_retention_are_pruned(simulator):
    target = closed_port_url()
    old = simulator.send_webhooks(target, "new_lead", 5, max_tries=1)

    advanced = simulator.n8n("POST", "/clock", {"advance_seconds": 15 * 86400})
    recent = simulator.send_webhooks(target, "new_lead", 3, max_tries=1)

    assert advanced["pruned"] == old["executions"]
    assert all_execution_ids(simulator) == recent["executions"][::-1]
    gone = simulator.http.get(f"{API}/executions/{old['executions'][0]}", headers=KEY)
    assert gone.status_code == 404
    still = simulator.http.get(f"{API}/executions/{recent['executions'][0]}", headers=KEY)
    assert still.status_code == 200


def test_only_the_newest_max_count_executions_are_kept(simulator):
    simulator.n8n("POST", "/reset", {"max_count": 10})
    report = simulator.send_webhooks(closed_port_url(), "order_update", 15, max_tries=1)

    assert all_execution_ids(simulator) == report["executions"][5:][::-1]


def test_workflows_and_environment_name_the_same_ids(simulator):
    workflows = simulator.http.get(f"{API}/workflows", headers=KEY).json()["data"]
    environment = simulator.n8n("GET", "/environment")

    assert {w["id"] for w in workflows} == {default_workflow_id(key) for key in WORKFLOWS}
    for key in WORKFLOWS:
        assert environment[f"N8N_WORKFLOW_ID_{key.upper()}"] == default_workflow_id(key)
        assert environment[f"N8N_WEBHOOK_SECRET_{key.upper()}"]
    assert environment["N8N_API_KEY"] == "sim-n8n-key"
