"""The simulated n8n over real loopback HTTP, against a stand-in receiver.

The `send_node` override: a send can run its executions with the HTTP node renamed (as someone
renaming it in n8n between runs would), so a soak test can plant a delivery the gap resync
cannot rebuild. Only the node's name changes in what the executions API serves; the deliveries
themselves are sent exactly as before.

Then what n8n does that the gap resync must cope with: workflows built three ways (the
payload in the item entering the send node, in a "Build payload" node's items, several items
per execution), executions that fail before or in their send node, pruning (also between a
list and a fetch), the public API's rate limit, its cursor, and the ledger that tells a test
which delivery ids to expect."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sync_platform_simulator import SimulatorServer
from sync_platform_simulator.n8n import MAX_NODE_NAME, SEND_NODE

API = "/n8n/api/v1"
KEY = {"X-N8N-API-KEY": "sim-n8n-key"}
RENAMED = "HTTP Request"


class Receiver:
    """A stand-in receiver that accepts every delivery and remembers it, so a test can
    compare what was sent without the platform (the simulator never imports it)."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        # webhook-id → statuses to answer its next requests with, before the usual 202
        self.refuse: dict[str, list[int]] = {}
        received, refuse = self.deliveries, self.refuse

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
                )
                queued = refuse.get(self.headers.get("webhook-id", ""))
                self.send_response(queued.pop(0) if queued else 202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"accepted"}')

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a multi-item send opens many connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(seed=42) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def sim(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.post("/_sim/n8n/reset").raise_for_status()
        yield client


def send(client: httpx.Client, target: str, workflow: str, count: int, **options) -> dict:
    body = {"target": target, "workflow_key": workflow, "count": count, **options}
    response = client.post("/_sim/n8n/send", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def execution(client: httpx.Client, execution_id: str) -> dict:
    response = client.get(
        f"{API}/executions/{execution_id}", params={"includeData": "true"}, headers=KEY
    )
    assert response.status_code == 200, response.text
    return response.json()


def send_node_view(served: dict) -> dict[str, Any]:
    """Where an execution names its HTTP node: the last node, the node the one before it
    connects to, the run data's node names, and the last node executed."""
    nodes = served["workflowData"]["nodes"]
    before = nodes[-2]["name"]
    return {
        "node": nodes[-1]["name"],
        "connected": served["workflowData"]["connections"][before]["main"][0][0]["node"],
        "ran": list(served["data"]["resultData"]["runData"])[-1],
        "last": served["data"]["resultData"]["lastNodeExecuted"],
    }


def input_item(served: dict, node: str) -> dict:
    """The item that entered `node` (where the gap resync looks for the payload)."""
    run = served["data"]["resultData"]["runData"]
    previous = run[node][0]["source"][0]["previousNode"]
    return run[previous][0]["data"]["main"][0][0]["json"]


def renamed(value: Any, old: str, new: str) -> Any:
    """`value` with every string (and key) equal to `old` replaced by `new`."""
    if isinstance(value, dict):
        return {renamed(k, old, new): renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, old, new) for v in value]
    return new if value == old else value


@pytest.mark.parametrize("workflow", ["form_submission", "order_update"])
def test_a_renamed_send_node_is_what_the_executions_api_shows(sim, receiver, workflow):
    report = send(sim, receiver.url, workflow, 3, seed=1, send_node=RENAMED)

    listed = sim.get(f"{API}/executions", params={"includeData": "true"}, headers=KEY).json()[
        "data"
    ]
    assert [e["id"] for e in listed] == report["executions"][::-1]
    for served in listed + [execution(sim, i) for i in report["executions"]]:
        assert send_node_view(served) == dict.fromkeys(
            ["node", "connected", "ran", "last"], RENAMED
        )
        assert SEND_NODE not in json.dumps(served)
        # The payload is still there, under the node's new name.
        item = input_item(served, RENAMED)
        assert item["webhookId"] == f"n8n-{served['workflowId']}-{served['id']}"
    control = sim.get("/_sim/n8n/executions").json()
    assert {e["send_node"] for e in control} == {RENAMED}


def test_only_the_node_name_differs_from_the_same_execution_unrenamed(server, sim, receiver):
    (execution_id,) = send(sim, receiver.url, "new_lead", 1, seed=2, send_node=RENAMED)[
        "executions"
    ]

    served = execution(sim, execution_id)

    n8n = server.state.n8n
    original = n8n.execution(execution_id)
    assert original is not None and original.send_node == RENAMED
    with n8n.lock:
        unrenamed = n8n.summary(dataclasses.replace(original, send_node=SEND_NODE), True)
    assert renamed(served, RENAMED, SEND_NODE) == json.loads(json.dumps(unrenamed))


def test_a_send_without_the_override_is_unchanged_and_the_override_is_per_send(sim, receiver):
    first = send(sim, receiver.url, "new_lead", 2, seed=3, send_node=RENAMED)
    second = send(sim, receiver.url, "new_lead", 2, seed=3)

    for execution_id in first["executions"]:
        assert send_node_view(execution(sim, execution_id))["node"] == RENAMED
    for execution_id in second["executions"]:
        served = execution(sim, execution_id)
        assert send_node_view(served) == dict.fromkeys(
            ["node", "connected", "ran", "last"], SEND_NODE
        )
        assert RENAMED not in json.dumps(served)
        assert input_item(served, SEND_NODE)["webhookId"].endswith(f"-{execution_id}")


def test_the_deliveries_are_sent_exactly_as_without_the_override(sim, receiver):
    def deliveries(**options) -> tuple[dict, list[dict]]:
        sim.post("/_sim/n8n/reset").raise_for_status()
        receiver.deliveries.clear()
        report = send(
            sim, receiver.url, "new_lead", 10, seed=4, duplicate_rate=0.3, drop_rate=0.3,
            **options,
        )  # fmt: skip
        # Timestamps, signatures and the event's createdAt follow the clock; nothing else may
        # differ.
        kept = [
            {
                "path": d["path"],
                "body": {k: v for k, v in json.loads(d["body"]).items() if k != "createdAt"},
                "headers": {
                    k.lower(): v
                    for k, v in d["headers"].items()
                    if k.lower() not in ("host", "webhook-timestamp", "webhook-signature")
                },
                "signed": sorted(d["headers"]),
            }
            for d in receiver.deliveries
        ]
        return report, sorted(kept, key=lambda d: d["headers"]["webhook-id"])

    plain_report, plain = deliveries()
    renamed_report, renamed_deliveries = deliveries(send_node=RENAMED)

    assert renamed_deliveries == plain
    assert plain_report["dropped"] and plain_report["duplicated"]
    assert renamed_report == plain_report


@pytest.mark.parametrize(
    ("send_node", "why"),
    [
        ("", "at least 1 character"),
        ("   ", "should match pattern"),
        ("x" * (MAX_NODE_NAME + 1), "at most 128 characters"),
        ("Build payload", "already another node"),  # n8n's node names are unique
        ("Sign", "already another node"),
    ],
)
def test_an_unusable_send_node_is_refused_before_anything_runs(sim, receiver, send_node, why):
    body = {"target": receiver.url, "workflow_key": "new_lead", "send_node": send_node}

    response = sim.post("/_sim/n8n/send", json=body)

    assert response.status_code == 400 and why in response.text, response.text
    assert sim.get("/_sim/n8n/executions").json() == []
    assert receiver.deliveries == []


def test_the_longest_name_and_a_name_only_other_workflows_use_are_accepted(sim, receiver):
    longest = send(sim, receiver.url, "new_lead", 1, send_node="y" * MAX_NODE_NAME)
    # "Sign" is a node of signed workflows only; order_update uses a shared-secret header.
    header = send(sim, receiver.url, "order_update", 1, send_node="Sign")

    assert send_node_view(execution(sim, longest["executions"][0]))["last"] == "y" * 128
    assert send_node_view(execution(sim, header["executions"][0]))["last"] == "Sign"


# -- builds, errors, pruning, rate limit, cursor, ledger -------------------------------------


def reset(client: httpx.Client, **settings: Any) -> None:
    client.post("/_sim/n8n/reset", json=settings).raise_for_status()


def header(delivery: dict, name: str) -> str:
    return {k.lower(): v for k, v in delivery["headers"].items()}[name.lower()]


def arrivals(receiver: Receiver) -> Counter[str]:
    """How many requests arrived per webhook-id."""
    return Counter(header(d, "webhook-id") for d in receiver.deliveries)


def listed(client: httpx.Client, **params: Any) -> list[str]:
    """Every execution id the public API lists (all pages)."""
    ids, cursor = [], None
    while True:
        query = params | ({"cursor": cursor} if cursor else {"limit": 250})
        response = client.get(f"{API}/executions", params=query, headers=KEY)
        assert response.status_code == 200, response.text
        ids += [e["id"] for e in response.json()["data"]]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            return ids


def standard_signature(secret: str, delivery: dict) -> str:
    """Standard Webhooks' v1 signature of a delivery, computed here from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = ".".join(
        [header(delivery, "webhook-id"), header(delivery, "webhook-timestamp"), delivery["body"]]
    )
    digest = hmac.new(key, content.encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_build_node_sends_the_payload_items_json_with_an_item_delivery_id(sim, receiver):
    reset(
        sim,
        workflows=[
            {"key": "new_lead", "build": "build_node"},
            {"key": "order_update", "auth": "header"},
        ],
    )
    signed = send(sim, receiver.url, "new_lead", 2, seed=5)
    # The per-send override: order_update is convention in its settings, build_node here.
    shared = send(sim, receiver.url, "order_update", 2, seed=5, build="build_node")

    assert signed["build"] == shared["build"] == "build_node"
    got = {header(d, "webhook-id"): d for d in receiver.deliveries}
    assert sorted(got) == sorted(f"n8n-{e}-0" for e in signed["executions"] + shared["executions"])
    secret = sim.get("/_sim/n8n/environment").json()["N8N_WEBHOOK_SECRET_NEW_LEAD"]
    for execution_id in signed["executions"] + shared["executions"]:
        served = execution(sim, execution_id)
        run = served["data"]["resultData"]["runData"]
        assert list(run)[1:] == ["Build payload", "HTTP Request"]
        assert served["data"]["resultData"]["lastNodeExecuted"] == "HTTP Request"
        (payload,) = run["Build payload"][0]["data"]["main"][0]
        task = run["HTTP Request"][0]
        assert task.keys() >= {"startTime", "executionTime", "source", "data"}
        assert task["source"] == [{"previousNode": "Build payload"}]
        assert task["data"]["main"][0][0]["pairedItem"] == {"item": 0}
        delivery = got[f"n8n-{execution_id}-0"]
        # The body is the item's json exactly as JSON.stringify writes it.
        assert delivery["body"] == json.dumps(
            payload["json"], separators=(",", ":"), ensure_ascii=False
        )
        assert header(delivery, "X-N8N-Execution-Id") == execution_id
        assert payload["json"]["eventId"].startswith("evt_")
        if execution_id in signed["executions"]:
            assert header(delivery, "webhook-signature") == standard_signature(secret, delivery)
        else:
            assert header(delivery, "X-Webhook-Secret") == "sim-n8n-order_update-shared-secret"


def test_multi_item_sends_each_item_as_its_own_delivery_with_its_own_faults(sim, receiver):
    reset(sim, workflows=[{"key": "new_lead", "build": "multi_item", "items": [2, 4]}])
    report = send(sim, receiver.url, "new_lead", 12, seed=8, drop_rate=0.3, duplicate_rate=0.3)

    outcomes = report["deliveries"]
    came = arrivals(receiver)
    assert set(came) == set(outcomes["sent"]) == set(outcomes["delivered"])
    assert set(came) == set(outcomes["ids"]) - set(outcomes["dropped"])
    assert {i for i, n in came.items() if n == 2} == set(outcomes["duplicated"])
    assert set(came.values()) == {1, 2}
    mixed = 0
    for execution_id in report["executions"]:
        run = execution(sim, execution_id)["data"]["resultData"]["runData"]
        built = run["Build payload"][0]["data"]["main"][0]
        sent = run["HTTP Request"][0]["data"]["main"][0]
        assert 2 <= len(built) <= 4 and len(sent) == len(built)
        assert [i["pairedItem"] for i in built] == [{"item": 0}] * len(built)
        assert [i["pairedItem"] for i in sent] == [{"item": i} for i in range(len(sent))]
        ids = [f"n8n-{execution_id}-{i}" for i in range(len(built))]
        assert set(ids) <= set(outcomes["ids"])
        for delivery_id, item, answer in zip(ids, built, sent, strict=True):
            if delivery_id in outcomes["dropped"]:
                assert answer["json"] == {"error": "socket hang up"}
            else:
                bodies = {
                    d["body"] for d in receiver.deliveries if header(d, "webhook-id") == delivery_id
                }
                assert bodies == {json.dumps(item["json"], separators=(",", ":"))}
                assert answer["json"] == {"status": "accepted"}
        mixed += bool(set(ids) & set(outcomes["dropped"])) and bool(set(ids) & set(came))
    assert mixed  # one execution can have a delivered item and a dropped item
    assert len({header(d, "X-N8N-Execution-Id") for d in receiver.deliveries}) > 1


def test_a_failed_first_item_reruns_the_whole_node_a_failed_later_item_does_not(sim, receiver):
    """n8n's WorkflowExecute with Retry On Fail and On Error: Continue runs the node again
    (every item resent) while its first output item is an error, and only then."""
    reset(sim, workflows=[{"key": "new_lead", "build": "multi_item", "items": 2}])
    receiver.refuse.update({"n8n-1-0": [503], "n8n-2-1": [503]})

    report = send(sim, receiver.url, "new_lead", 2, concurrency=1, wait_between_tries_ms=10)

    assert arrivals(receiver) == {"n8n-1-0": 2, "n8n-1-1": 2, "n8n-2-0": 1, "n8n-2-1": 1}
    assert report["deliveries"]["delivered"] == ["n8n-1-0", "n8n-1-1", "n8n-2-0"]
    assert report["deliveries"]["failed"] == ["n8n-2-1"] and report["failed"] == ["2"]
    assert listed(sim, status="success") == ["2", "1"]  # On Error: Continue
    run = execution(sim, "2")["data"]["resultData"]["runData"]
    assert run["HTTP Request"][0]["data"]["main"][0][1]["json"] == {
        "error": "Request failed with status code 503"
    }


@pytest.mark.parametrize("build", ["convention", "multi_item"])
def test_error_executions_fail_before_or_in_the_send_node(sim, receiver, build):
    send_node = SEND_NODE if build == "convention" else "HTTP Request"
    report = send(
        sim, receiver.url, "new_lead", 16, seed=3, build=build,
        error_before_send_rate=0.25, error_in_send_rate=0.25,
    )  # fmt: skip

    before, inside = report["errored_before_send"], report["errored_in_send"]
    assert before and inside and not set(before) & set(inside)
    assert sorted(listed(sim, status="error"), key=int) == sorted(before + inside, key=int)
    succeeded = [e for e in report["executions"] if e not in before + inside]
    assert sorted(listed(sim, status="success"), key=int) == succeeded
    received = {header(d, "X-N8N-Execution-Id") for d in receiver.deliveries}
    assert received == set(succeeded)
    for execution_id in before:
        served = execution(sim, execution_id)
        result = served["data"]["resultData"]
        assert served["status"] == "error" and served["finished"] is False
        assert send_node not in result["runData"] and list(result["runData"])[-1] == "Build payload"
        assert result["lastNodeExecuted"] == "Build payload"
        (task,) = result["runData"]["Build payload"]
        assert task["executionStatus"] == "error" and "data" not in task
        assert (
            task["error"] == result["error"] and result["error"]["node"]["name"] == "Build payload"
        )
    for execution_id in inside:
        result = execution(sim, execution_id)["data"]["resultData"]
        assert result["lastNodeExecuted"] == send_node
        (task,) = result["runData"][send_node]
        assert task["executionStatus"] == "error" and "data" not in task
        assert task["error"] == result["error"] and task["error"]["name"] == "NodeApiError"
        previous = task["source"][0]["previousNode"]
        assert result["runData"][previous][0]["data"]["main"][0]  # the payload was built
    outcomes = report["deliveries"]
    assert {i.split("-")[-2 if build == "multi_item" else -1] for i in outcomes["not_sent"]} == set(
        inside
    )
    assert not any(
        i.split("-")[-2 if build == "multi_item" else -1] in before for i in outcomes["ids"]
    )


def test_without_continue_on_fail_the_send_nodes_task_holds_the_error(sim):
    reset(sim, continue_on_fail=False)
    (execution_id,) = send(sim, "http://127.0.0.1:9", "new_lead", 1, max_tries=1)["executions"]

    served = execution(sim, execution_id)
    result = served["data"]["resultData"]
    (task,) = result["runData"][SEND_NODE]
    assert served["status"] == "error" and result["lastNodeExecuted"] == SEND_NODE
    assert task["executionStatus"] == "error" and task["error"] == result["error"]
    assert (
        result["error"]["message"] == "The service refused the connection - perhaps it is offline"
    )


def test_pruning_by_retention_now_and_between_a_list_and_a_fetch(sim, receiver):
    ids = send(sim, receiver.url, "new_lead", 5)["executions"]

    now = sim.post("/_sim/n8n/prune", json={"execution_ids": [ids[0], "999"]}).json()
    assert now == {"pruned": [ids[0]], "skipped": ["999"], "armed": False}
    assert sim.get(f"{API}/executions/{ids[0]}", headers=KEY).status_code == 404
    # n8n's pruning running between the client's list and its fetch:
    armed = sim.post("/_sim/n8n/prune", json={"oldest": 1, "when": "after_next_list"}).json()
    assert armed["armed"] is True
    assert listed(sim) == ids[:0:-1]  # still listed...
    gone = sim.get(f"{API}/executions/{ids[1]}", headers=KEY)
    assert (gone.status_code, gone.json()) == (404, {"message": "Not Found"})  # ...then gone
    assert listed(sim) == ids[:1:-1]
    # Retention: older than EXECUTIONS_DATA_MAX_AGE (14 days here) on n8n's clock.
    assert (
        sim.post("/_sim/n8n/clock", json={"advance_seconds": 15 * 86400}).json()["pruned"]
        == ids[2:]
    )
    assert listed(sim) == []
    ledger = sim.get("/_sim/n8n/deliveries", params={"workflow_key": "new_lead"}).json()
    assert ledger["new_lead"]["pruned"] == ids and ledger["new_lead"]["executions"] == ids


def test_the_public_api_rate_limit_answers_429_with_retry_after(sim):
    limit = {"read_limit": 2, "window_seconds": 30}
    assert sim.post("/_sim/n8n/rate-limit", json=limit).json() == {"rate_limit": limit}

    answers = [
        sim.get(f"{API}/executions", headers=KEY),
        sim.get(f"{API}/executions/1", headers=KEY),  # a 404 counts too
        sim.get(f"{API}/workflows", headers=KEY),
    ]
    unauthenticated = sim.get(f"{API}/workflows")
    sim.delete("/_sim/n8n/rate-limit").raise_for_status()
    after = sim.get(f"{API}/workflows", headers=KEY)

    assert [a.status_code for a in answers] == [200, 404, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"2"}
    assert answers[2].json() == {"message": "Too Many Requests"}
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 30
    assert "Retry-After" not in answers[0].headers
    assert unauthenticated.status_code == 401
    assert after.status_code == 200 and "X-RateLimit-Limit" not in after.headers


def test_a_rate_limit_fault_on_the_n8n_api_only(sim, receiver):
    """n8n's own limit is opt-in (above); the shared fault plan makes any 429, scoped by path."""
    plan = {"rate_limit_next": 1, "retry_after": 7, "paths": [API]}
    sim.post("/_sim/faults", json=plan).raise_for_status()
    try:
        limited = sim.get(f"{API}/executions", headers=KEY)
        report = send(sim, receiver.url, "new_lead", 1)  # the sender is not faulted
        after = sim.get(f"{API}/executions", headers=KEY)
    finally:
        sim.delete("/_sim/faults").raise_for_status()

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert report["delivered"] == report["executions"]
    assert after.status_code == 200


def test_next_cursor_is_base64_of_json_stringify_of_last_id_and_limit(sim, receiver):
    send(sim, receiver.url, "new_lead", 5)

    first = sim.get(f"{API}/executions", params={"limit": 2}, headers=KEY).json()
    # What n8n writes: Buffer.from(JSON.stringify({lastId, limit})).toString('base64')
    assert base64.b64decode(first["nextCursor"]) == b'{"lastId":"4","limit":2}'
    assert first["nextCursor"] == "eyJsYXN0SWQiOiI0IiwibGltaXQiOjJ9"
    second = sim.get(f"{API}/executions", params={"cursor": first["nextCursor"]}, headers=KEY)
    third = sim.get(
        f"{API}/executions", params={"cursor": second.json()["nextCursor"]}, headers=KEY
    ).json()
    assert [e["id"] for e in first["data"] + second.json()["data"] + third["data"]] == [
        "5", "4", "3", "2", "1",
    ]  # fmt: skip
    assert third["nextCursor"] is None


def test_the_deliveries_ledger_names_every_delivery_id_and_failed_execution(sim, receiver):
    reset(
        sim,
        workflows=[
            {"key": "new_lead", "build": "multi_item", "items": [1, 3]},
            {"key": "order_update", "auth": "header"},
        ],
    )
    faults = {
        "drop_rate": 0.2,
        "duplicate_rate": 0.2,
        "error_before_send_rate": 0.1,
        "error_in_send_rate": 0.1,
    }
    reports = [
        send(sim, receiver.url, "new_lead", 10, seed=1, **faults),
        send(sim, receiver.url, "new_lead", 4, seed=2),
    ]
    other = send(sim, receiver.url, "order_update", 3, seed=3, drop_rate=0.5)

    ledger = sim.get("/_sim/n8n/deliveries").json()
    mine = ledger["new_lead"]
    assert mine["executions"] == reports[0]["executions"] + reports[1]["executions"]
    for name in ("errored_before_send", "errored_in_send"):
        assert mine[name] == reports[0][name] + reports[1][name]
    for name, ids in mine["deliveries"].items():
        assert ids == reports[0]["deliveries"][name] + reports[1]["deliveries"][name], name
    outcomes = mine["deliveries"]
    partition = [outcomes[k] for k in ("delivered", "dropped", "failed", "not_sent", "pending")]
    assert sorted(i for ids in partition for i in ids) == sorted(outcomes["ids"])
    assert set(outcomes["sent"]) | set(other["deliveries"]["sent"]) == set(arrivals(receiver))
    by_delivery = mine["by_delivery"]
    assert list(by_delivery) == outcomes["ids"]
    for name in ("delivered", "dropped", "failed", "not_sent"):
        assert [i for i, v in by_delivery.items() if v["outcome"] == name] == outcomes[name]
    assert mine["errored"] == sorted(mine["errored_before_send"] + mine["errored_in_send"], key=int)
    assert ledger["order_update"]["deliveries"]["dropped"] == other["deliveries"]["dropped"]
    assert set(ledger) == {"new_lead", "order_update"}
    assert sim.get("/_sim/n8n/deliveries", params={"workflow_key": "nope"}).status_code == 400
