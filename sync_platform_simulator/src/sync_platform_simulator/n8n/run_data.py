"""How n8n stores an execution, as its public API serves it with includeData=true: the
workflow (nodes and connections), the run data (a task per node that ran) and node errors."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

from sync_platform_simulator.n8n.executions import Attempt, Execution, Item, _seen_ok
from sync_platform_simulator.n8n.models import SIGN_NODE, N8nWorkflow, _trigger, node_names
from sync_platform_simulator.signing import signed_headers

# n8n's messages for a request that failed (packages/workflow/src/errors: node.error.ts
# COMMON_ERRORS and node-api.error.ts STATUS_CODE_MESSAGES).
ECONNREFUSED_MESSAGE = "The service refused the connection - perhaps it is offline"
ENOTFOUND_MESSAGE = (
    "The connection cannot be established, this usually occurs due to an incorrect host(domain) "
    "value"
)
STATUS_CODE_MESSAGES = {
    "4XX": "Your request is invalid or could not be processed by the service",
    "400": "Bad request - please check your parameters",
    "401": "Authorization failed - please check your credentials",
    "403": "Forbidden - perhaps check your credentials?",
    "404": "The resource you are requesting could not be found",
    "429": "The service is receiving too many requests from you",
    "5XX": "The service failed to process your request",
    "500": "The service was not able to process your request",
    "502": "Bad gateway - the service failed to handle your request",
    "503": "Service unavailable - try again later or consider setting this node to retry "
    "automatically (in the node settings)",
    "504": "Gateway timed out - perhaps try again later?",
}


def _n8n_template(template: str, js: bool) -> str:
    """The delivery-id template as n8n writes it: in a Code node's template literal (`js`),
    or in a parameter expression."""
    parts = {
        "workflow_id": ("${$workflow.id}", "{{ $workflow.id }}"),
        "execution_id": ("${$execution.id}", "{{ $execution.id }}"),
        "item_index": ("${$itemIndex}", "{{ $itemIndex }}"),
    }
    return template.format(**{name: pair[0 if js else 1] for name, pair in parts.items()})


def workflow_data(workflow: N8nWorkflow, send_node: str | None = None) -> dict[str, Any]:
    """The workflow as n8n stores it with an execution (nodes and connections); `send_node`
    is the HTTP node's name as it was when that execution ran."""
    send_node = send_node or workflow.send_node_name
    trigger_name, trigger_type = _trigger(workflow)
    signed = workflow.auth == "standard_webhooks"
    trigger: dict[str, Any] = {
        "name": trigger_name,
        "type": trigger_type,
        "typeVersion": 2,
        "parameters": {},
    }
    http: dict[str, Any] = {
        "name": send_node,
        "type": "n8n-nodes-base.httpRequest",
        "typeVersion": 4.2,
        "retryOnFail": True,
        "onError": "continueRegularOutput",
    }
    url = f"={{{{ $env.WAREHOUSE_RECEIVER_URL }}}}/webhooks/n8n/{workflow.key}"
    if workflow.build == "convention":
        send_headers = [
            {"name": "webhook-id", "value": "={{ $json.webhookId }}"},
            {"name": "X-N8N-Execution-Id", "value": "={{ $execution.id }}"},
        ]
        if signed:
            send_headers += [
                {"name": "webhook-timestamp", "value": "={{ $json.timestamp }}"},
                {"name": "webhook-signature", "value": "=v1,{{ $json.signature }}"},
            ]
        webhook_id = _n8n_template(workflow.delivery_id_template, js=True)
        nodes = [
            trigger,
            {
                "name": workflow.payload_node,
                "type": "n8n-nodes-base.code",
                "typeVersion": 2,
                "parameters": {
                    "jsCode": "const event = { ...$json };\n"
                    f"return [{{ json: {{ webhookId: `{webhook_id}`,\n"
                    "  timestamp: Math.floor(Date.now() / 1000), body: JSON.stringify(event) } }];"
                },
            },
        ]
        if signed:
            nodes.append(
                {
                    "name": SIGN_NODE,
                    "type": "n8n-nodes-base.crypto",
                    "typeVersion": 1,
                    "parameters": {
                        "action": "hmac",
                        "type": "SHA256",
                        "value": "={{ $json.webhookId }}.{{ $json.timestamp }}.{{ $json.body }}",
                        "dataPropertyName": "signature",
                        "encoding": "base64",
                    },
                }
            )
        http["parameters"] = {
            "method": "POST",
            "url": url,
            "sendHeaders": True,
            "headerParameters": {"parameters": send_headers},
            "sendBody": True,
            "contentType": "raw",
            "rawContentType": "application/json",
            "body": "={{ $json.body }}",
        }
    else:
        trigger["parameters"] = {"httpMethod": "POST", "path": workflow.key}
        code = (
            "return { json: $json.body };"
            if workflow.build == "build_node"
            else "return $input.first().json.body.events.map((event) => ({ json: event }));"
        )
        mode = "runOnceForEachItem" if workflow.build == "build_node" else "runOnceForAllItems"
        nodes = [
            trigger,
            {
                "name": workflow.payload_node,
                "type": "n8n-nodes-base.code",
                "typeVersion": 2,
                "parameters": {"mode": mode, "jsCode": code},
            },
        ]
        webhook_id = "=" + _n8n_template(workflow.delivery_id_template, js=False)
        send_headers = [
            {"name": "webhook-id", "value": webhook_id},
            {"name": "X-N8N-Execution-Id", "value": "={{ $execution.id }}"},
        ]
        http["parameters"] = {
            "method": "POST",
            "url": url,
            "sendHeaders": True,
            "headerParameters": {"parameters": send_headers},
            "sendBody": True,
            "contentType": "json",
            "specifyBody": "json",
            "jsonBody": "={{ JSON.stringify($json) }}",
        }
        if signed:
            http["notes"] = (
                "webhook-timestamp and webhook-signature (Standard Webhooks over the exact body "
                "sent) are added by the simulator: n8n's expressions have no HMAC"
            )
    if workflow.auth == "header":
        http["parameters"] |= {
            "authentication": "genericCredentialType",
            "genericAuthType": "httpHeaderAuth",
        }
    nodes.append(http)
    names = node_names(workflow, send_node)
    connections = {
        a: {"main": [[{"node": b, "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(names)
    }
    return {
        "id": workflow.id,
        "name": workflow.name,
        "active": True,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
    }


def _task(
    start_ms: int,
    index: int,
    previous: str | None,
    items: list[dict[str, Any]] | None = None,
    paired: list[int] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ITaskData: a node's run, with its output items (`data.main[0]`) or its `error`."""
    task: dict[str, Any] = {
        "hints": [],
        "startTime": start_ms,
        "executionIndex": index,
        "executionTime": 1 + index,
        "executionStatus": "error" if error is not None else "success",
        "source": [{"previousNode": previous}] if previous else [],
    }
    if error is not None:
        task["error"] = error
        return task
    paired = paired if paired is not None else [0] * len(items or [])
    task["data"] = {
        "main": [
            [
                {"json": item, "pairedItem": {"item": p}}
                for item, p in zip(items or [], paired, strict=True)
            ]
        ],
    }
    return task


def _node_error(
    node: dict[str, Any],
    name: str,
    message: str,
    description: str | None,
    at_ms: int,
    *,
    http_code: str | None = None,
    messages: list[str] | None = None,
    item_index: int | None = None,
) -> dict[str, Any]:
    """A node's error as n8n keeps it in the run data: the error's own fields spread, then
    message and stack (WorkflowExecute), the node it happened in included."""
    error: dict[str, Any] = {
        "level": "warning" if name == "NodeApiError" else "error",
        "tags": {},
        "description": description,
        "context": {"itemIndex": item_index} if item_index is not None else {},
        "functionality": "regular",
        "name": name,
        "timestamp": at_ms,
        "node": node,
        "messages": messages or [],
    }
    if name == "NodeApiError":
        error["httpCode"] = http_code
    error["message"] = message
    error["stack"] = f"{name}: {message}"
    return error


def _payload_error(node: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The payload node failing (a Code node reading a field the event lacks)."""
    return _node_error(
        node,
        "NodeOperationError",
        "Cannot read properties of undefined (reading 'eventId') [line 1]",
        None,
        at_ms,
        item_index=0,
    )


def _unsent_error(node: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The send node failing before any request left n8n (the host cannot be resolved)."""
    cause = "getaddrinfo ENOTFOUND warehouse-receiver.internal"
    return _node_error(
        node, "NodeApiError", ENOTFOUND_MESSAGE, cause, at_ms, messages=[cause], item_index=0
    )


def _delivery_error(node: dict[str, Any], at_ms: int, item: Item) -> dict[str, Any]:
    """The send node failing on an item's last answer (On Error: Stop Workflow)."""
    seen = item.seen or Attempt(None, "socket hang up")
    if seen.status is None:
        return _node_error(
            node, "NodeApiError", ECONNREFUSED_MESSAGE, seen.error, at_ms,
            messages=[seen.error or ""], item_index=item.index,
        )  # fmt: skip
    code = str(seen.status)
    message = STATUS_CODE_MESSAGES.get(code) or STATUS_CODE_MESSAGES.get(f"{code[0]}XX", "")
    body = seen.body if isinstance(seen.body, dict) else {}
    description = body.get("message") or body.get("reason") or None
    return _node_error(
        node, "NodeApiError", message, description, at_ms, http_code=code,
        messages=[f"Request failed with status code {code}"], item_index=item.index,
    )  # fmt: skip


def _sent_output(item: Item, last: Attempt | None) -> dict[str, Any]:
    """The HTTP node's output item for one request (On Error: Continue)."""
    if item.dropped:
        return {"error": "socket hang up"}
    if last is None:
        return {}
    if last.ok:
        return last.body if isinstance(last.body, dict) else {"data": last.body}
    return {"error": last.error or f"Request failed with status code {last.status}"}


def run_data(execution: Execution) -> dict[str, Any]:
    """`data` of an execution as n8n's API returns it with includeData=true: runData has a
    task for each node that ran, in order; a failed node's task holds the error (also in
    `resultData.error`) and the nodes after it are absent."""
    workflow = execution.workflow
    names = node_names(workflow, execution.send_node)
    nodes = {node["name"]: node for node in workflow_data(workflow, execution.send_node)["nodes"]}
    start_ms = int(execution.started_at.timestamp() * 1000)
    outputs: list[tuple[list[dict[str, Any]], list[int]]] = []
    # Makes the error of the node after the last one in `outputs`, if that node failed.
    failing: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    if workflow.build == "convention":
        only = execution.items[0]
        outputs.append(([only.event], [0]))
        item = {"webhookId": only.delivery_id, "timestamp": execution.timestamp, "body": only.body}
        if execution.failure == "before_send":
            failing = _payload_error
        else:
            outputs.append(([item], [0]))
            if workflow.auth == "standard_webhooks":
                signature = signed_headers(
                    workflow.secret or "", only.delivery_id, execution.timestamp,
                    only.body.encode(),
                )["webhook-signature"].removeprefix("v1,")  # fmt: skip
                outputs.append(([item | {"signature": signature}], [0]))
            if execution.failure == "in_send":
                failing = _unsent_error
            elif execution.status == "error":
                failing = functools.partial(_delivery_error, item=only)
            else:
                last = only.attempts[-1] if only.attempts else None
                outputs.append(([_sent_output(only, last)], [0]))
    else:
        events = [item.event for item in execution.items]
        received = events[0] if workflow.build == "build_node" else {"events": events}
        trigger = {
            "headers": {"content-type": "application/json"},
            "params": {},
            "query": {},
            "body": received,
        }
        outputs.append(([trigger], [0]))
        if execution.failure == "before_send":
            failing = _payload_error
        else:
            outputs.append((events, [0] * len(events)))  # all from the trigger's one item
            if execution.failure == "in_send":
                failing = _unsent_error
            elif execution.status == "error":
                unsent = [i for i in execution.items if not i.dropped and not _seen_ok(i)]
                failing = functools.partial(_delivery_error, item=unsent[0])
            else:
                sent = [_sent_output(item, item.seen) for item in execution.items]
                outputs.append((sent, list(range(len(sent)))))
    run: dict[str, Any] = {}
    for i, (items, paired) in enumerate(outputs):
        run[names[i]] = [_task(start_ms + i, i, names[i - 1] if i else None, items, paired)]
    result: dict[str, Any] = {}
    last_node = names[len(outputs) - 1]
    if failing is not None:
        i = len(outputs)
        last_node = names[i]
        error = failing(nodes[last_node], start_ms + i)
        run[last_node] = [_task(start_ms + i, i, names[i - 1], error=error)]
        result["error"] = error
    result |= {"runData": run, "pinData": {}, "lastNodeExecuted": last_node}
    return {
        "startData": {},
        "resultData": result,
        "executionData": {
            "contextData": {},
            "nodeExecutionStack": [],
            "metadata": {},
            "waitingExecution": {},
            "waitingExecutionSource": {},
        },
    }
