"""What one n8n execution sent: its deliveries (the webhook-id and the exact body of each),
read from the execution's run data where the workflow's webhooks.yaml entry says they are.

n8n keeps, per node that ran, its tasks (`data.resultData.runData[<node>]`, ITaskData), each
with its output items (`data.main[<output>][<i>].json`) and, for a node with inputs, where they
came from (`source[0].previousNode`, `previousNodeOutput`, `previousNodeRun`); a failed node's
task holds `error`, and the nodes after it are absent. The workflow as it was when the
execution ran is `workflowData` (nodes, connections). The deliveries are the output items of
the payload node: the one configured, or by default the node whose output entered the send
node (our convention: its item carries `webhookId` and `body`).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from sync_platform.config.webhooks import DELIVERY_ID, PayloadConfig


class PayloadNotFound(ValueError):
    """The execution's data does not show what it sent (saved without data, say)."""


class PayloadMisconfigured(PayloadNotFound):
    """webhooks.yaml does not match the workflow (a node it names is not there, a field is
    missing): fix the configuration, not n8n."""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    body: str


@dataclass(frozen=True)
class ExecutionRead:
    """An execution's deliveries as far as they were built, whether its send node ran, and
    for a failed execution the node it failed in and n8n's message."""

    deliveries: list[Delivery] = field(default_factory=list)
    send_node_ran: bool = False
    failed_node: str | None = None
    error: str | None = None

    @property
    def failure(self) -> str:
        """'in node X: message' for a failed execution."""
        where = f"in node {self.failed_node!r}" if self.failed_node else "in an unknown node"
        return f"{where}: {self.error}" if self.error else where


def js_json(value: Any) -> str:
    """JSON text as n8n's JSON.stringify writes it (no spaces, non-ASCII as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def read_execution(
    execution: dict[str, Any], *, send_node: str, payload: PayloadConfig
) -> ExecutionRead:
    """The execution's deliveries, in item order; raises PayloadMisconfigured when the
    configuration does not fit it and PayloadNotFound when n8n kept no data to read."""
    execution_id = str(execution.get("id"))
    run_data = _run_data(execution)
    names = _node_names(execution, run_data)
    for role, node in (("send_node", send_node), ("payload.node", payload.node)):
        if node is not None and node not in names:
            raise PayloadMisconfigured(
                f"node {node!r} ({role}) not found in execution {execution_id}; its nodes are "
                f"{', '.join(repr(name) for name in names)}"
            )
    failed_node, error = _failure(execution)
    send_ran = bool(run_data.get(send_node))
    items_node, output, run = _items_node(execution, run_data, send_node, payload)
    items = _output_items(run_data, items_node, output, run) if items_node else None
    if items is None:  # the payload was never built
        if send_ran:
            raise PayloadMisconfigured(
                f"node {send_node!r} ran in execution {execution_id} but its payload node "
                f"{items_node or '(none feeds it)'!r} has no output items"
            )
        return ExecutionRead([], send_ran, failed_node, error)
    if not send_ran and failed_node is None:
        return ExecutionRead([], False)  # succeeded without sending (a branch not taken)
    deliveries = [
        _delivery(execution, execution_id, items_node, index, item, payload)
        for index, item in enumerate(items)
    ]
    return ExecutionRead(deliveries, send_ran, failed_node, error)


def _run_data(execution: dict[str, Any]) -> dict[str, Any]:
    try:
        run_data = execution["data"]["resultData"]["runData"]
    except (KeyError, TypeError):
        run_data = None
    if not isinstance(run_data, dict) or not run_data:
        raise PayloadNotFound(
            f"execution {execution.get('id')} has no run data: n8n saved it without (turn on "
            "'Save successful production executions' in the workflow's settings)"
        )
    return run_data


def _node_names(execution: dict[str, Any], run_data: dict[str, Any]) -> list[str]:
    nodes = (execution.get("workflowData") or {}).get("nodes")
    if isinstance(nodes, list) and nodes:
        return [str(node.get("name")) for node in nodes if isinstance(node, dict)]
    return list(run_data)


def _failure(execution: dict[str, Any]) -> tuple[str | None, str | None]:
    if execution.get("status") not in ("error", "crashed"):
        return None, None
    result = execution["data"]["resultData"]
    error = result.get("error") if isinstance(result.get("error"), dict) else {}
    node = (error.get("node") or {}).get("name") if isinstance(error.get("node"), dict) else None
    message = error.get("message")
    if isinstance(message, str) and isinstance(error.get("description"), str):
        message = f"{message} ({error['description']})"
    return node or result.get("lastNodeExecuted"), message if isinstance(message, str) else None


def _items_node(
    execution: dict[str, Any], run_data: dict[str, Any], send_node: str, payload: PayloadConfig
) -> tuple[str | None, int, int]:
    """The node whose output items are the deliveries, and which of its outputs and runs."""
    if payload.node is not None:
        return payload.node, 0, 0
    tasks = run_data.get(send_node)
    if tasks:  # where the send node's input came from, as n8n recorded it
        sources = tasks[0].get("source") if isinstance(tasks[0], dict) else None
        if isinstance(sources, list) and sources and isinstance(sources[0], dict):
            source = sources[0]
            return (
                source.get("previousNode"),
                int(source.get("previousNodeOutput") or 0),
                int(source.get("previousNodeRun") or 0),
            )
    # The send node did not run: the node connected to its input in the workflow.
    connections = (execution.get("workflowData") or {}).get("connections") or {}
    for node, outputs in connections.items():
        for output, targets in enumerate((outputs or {}).get("main") or []):
            if any(isinstance(t, dict) and t.get("node") == send_node for t in targets or []):
                return node, output, 0
    return None, 0, 0


def _output_items(
    run_data: dict[str, Any], node: str, output: int, run: int
) -> list[dict[str, Any]] | None:
    try:
        items = run_data[node][run]["data"]["main"][output]
    except (KeyError, IndexError, TypeError):
        return None
    return [item.get("json") if isinstance(item, dict) else None for item in items or []]


def _delivery(
    execution: dict[str, Any],
    execution_id: str,
    node: str,
    index: int,
    item: Any,
    payload: PayloadConfig,
) -> Delivery:
    where = f"item {index} of node {node!r} in execution {execution_id}"
    if not isinstance(item, dict):
        raise PayloadNotFound(f"{where} has no json")
    if payload.body == "item":
        body = js_json(item)
    else:
        if payload.body_field not in item:
            raise PayloadMisconfigured(
                f"{where} has no field {payload.body_field!r} (payload.body_field); its fields "
                f"are {', '.join(sorted(item)) or 'none'} (payload.body: item if the whole item "
                "is what was sent)"
            )
        value = item[payload.body_field]
        body = value if isinstance(value, str) else js_json(value)
    values = {
        "execution_id": execution_id,
        "workflow_id": str(execution.get("workflowId") or ""),
        "item_index": str(index),
    }
    parts = []
    for literal, name, _, _ in string.Formatter().parse(payload.delivery_id):
        parts.append(literal)
        if name is not None:
            parts.append(values[name] if name in values else _item_field(item, name, where))
    delivery_id = "".join(parts)
    if not DELIVERY_ID.match(delivery_id):
        raise PayloadMisconfigured(
            f"{where}: delivery id {delivery_id[:60]!r} is not one the receiver accepts (1-200 "
            f"letters, digits, '_', ':' or '-'); check payload.delivery_id "
            f"{payload.delivery_id!r}"
        )
    if "\x00" in body:  # not JSON the receiver takes, and not text PostgreSQL stores
        raise PayloadNotFound(f"{where}: its body holds a NUL character")
    return Delivery(delivery_id, body)


def _item_field(item: dict[str, Any], name: str, where: str) -> str:
    """`item.a.b` of the item's json, as n8n's expression would print it."""
    value: Any = item
    for part in name.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            raise PayloadMisconfigured(
                f"{where} has no {name} for payload.delivery_id; its fields are "
                f"{', '.join(sorted(item))}"
            )
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value)) if isinstance(value, float) else str(value)
    raise PayloadMisconfigured(f"{where}: {name} is {type(value).__name__}, not an id")
