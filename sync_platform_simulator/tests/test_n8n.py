"""The simulated n8n's `send_node` override over real loopback HTTP: a send can run its
executions with the HTTP node renamed (as someone renaming it in n8n between runs would), so
a soak test can plant a delivery the gap resync cannot rebuild. Only the node's name changes
in what the executions API serves; the deliveries themselves are sent exactly as before."""

from __future__ import annotations

import dataclasses
import json
import threading
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
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
                )
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"accepted"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
