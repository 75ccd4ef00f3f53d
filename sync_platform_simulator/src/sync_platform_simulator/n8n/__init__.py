"""An n8n instance, simulated: workflows that SEND signed webhooks to the receiver, and the
n8n public API that lists what they ran.

Written from n8n's documentation and source (n8n-io/n8n), never from the platform's client:
- the public API's executions handler (packages/cli/src/public-api/v1/handlers/executions/
  executions.handler.ts, its spec spec/paths/executions.yml and spec/schemas/execution.yml),
  the cursor encoding (packages/cli/src/public-api/v1/shared/services/pagination.service.ts),
  the status filter (`error` means error or crashed, ExecutionRepository);
- the run data (IRunExecutionData, ITaskData, ISourceData in packages/workflow/src/
  Interfaces.ts), node errors (packages/workflow/src/errors/node-api.error.ts), the retries of
  a node with "Retry On Fail" (packages/core WorkflowExecute: with "On Error: Continue" the
  WHOLE node runs again, every item resent, as long as its first output item is an error);
- pruning (ExecutionsConfig in packages/@n8n/config: EXECUTIONS_DATA_MAX_AGE 336 h,
  EXECUTIONS_DATA_PRUNE_MAX_COUNT 10,000; ExecutionRepository.softDeletePrunableExecutions);
- the public API's optional rate limit (docs.n8n.io/connect/n8n-api/rate-limits: n8n 2.47+,
  off by default, per API key, 429 with Retry-After and X-RateLimit-* headers).

Sending (`POST /_sim/n8n/send`, or `N8nData.send` / `send_sync` in Python): `count` workflow
executions, each sending one webhook per item to `<target>/webhooks/n8n/<key>`, signed as the
workflow is configured (Standard Webhooks HMAC, or a shared-secret header), with a
`webhook-id` (the delivery id) and `X-N8N-Execution-Id`. A workflow is built one of three ways
(`N8nWorkflow.build`, or a send's `build` override):
- "convention": one item per execution; the node "Build payload" outputs `{webhookId,
  timestamp, body}` (body: the exact JSON text sent), "Sign" adds the signature (signed
  workflows), the HTTP node "Send to warehouse" sends `body` raw; delivery id
  `n8n-<workflowId>-<executionId>`;
- "build_node": "Build payload" outputs the payload itself (the item's `json` IS the body, sent
  as n8n's JSON.stringify writes it) and the HTTP node (default name "HTTP Request") sends
  each item's json with `webhook-id: n8n-<executionId>-<itemIndex>`;
- "multi_item": as build_node, several items per execution (`items`: a count or a range),
  each its own delivery, each drawn for drops and duplicates on its own.
Like an HTTP Request node with "Retry On Fail", a failed request is tried again a few times at
a fixed interval (a multi-item node runs again as a whole, as n8n does); with "On Error:
Continue" (the default here) the execution still ends `success` when every try failed.
Faults per send:
- `drop_rate` (per item): n8n is done with it, but the request never arrives (lost on the
  way; never retried);
- `duplicate_rate` (per item): the webhook arrives twice (same webhook-id and body);
- `delay_ms`: each execution waits this long before it sends (arrivals interleave);
- `error_before_send_rate`: the execution fails in "Build payload" (status `error`, the send
  node absent from its run data, nothing sent);
- `error_in_send_rate`: the execution fails in its send node before any request left (status
  `error`, the node's task has an `error`, nothing received).
What each delivery id became is in the send's report (`deliveries`) and, for everything run
since the last reset (pruned executions included), in `GET /_sim/n8n/deliveries`.

The public API under `/n8n/api/v1` (header `X-N8N-API-KEY`), shaped as n8n 1.x serves it:
- `GET /executions?workflowId=&status=&limit=&cursor=&includeData=`: newest first, pages of
  at most 250 (default 100), `{"data": [...], "nextCursor": <base64 of JSON.stringify({lastId,
  limit})> | null}`; running executions are left out unless `status=running`, as n8n does;
- `GET /executions/{id}?includeData=true`: one execution; with data, its run data
  (`data.resultData.runData`) and `workflowData` (nodes, connections);
- `GET /workflows`: the workflows, with their ids.
Errors are n8n's `{"message": ...}`. Executions whose `stoppedAt` is older than
`retention_days` (default 14, n8n's EXECUTIONS_DATA_MAX_AGE of 336 h) on the simulated clock,
or beyond the newest `max_count` (n8n's EXECUTIONS_DATA_PRUNE_MAX_COUNT, 10,000), are pruned:
absent from lists, 404 by id. The clock is real time plus an offset that
`POST /_sim/n8n/clock` moves forward (signatures use real time, as the receiver checks them).
`POST /_sim/n8n/prune` prunes chosen executions now, or right after the next list is served
(n8n's pruning running between a client's list and its fetch). `rate_limit` (settings, or
`POST /_sim/n8n/rate-limit`) turns on n8n's per-key read limit.

Where a delivery's payload lives in an execution (what the gap resync extracts):
- convention: the item that entered the send node — the first output item of the node named in
  `runData[<send node>][0].source[0].previousNode` — carries `webhookId`, `timestamp` and
  `body`, the exact JSON text that was (or should have been) sent;
- build_node / multi_item: item i of "Build payload" (`runData["Build payload"][0].data.main
  [0][i].json`) is the body of delivery `n8n-<executionId>-<i>`.
A send's `send_node` names the HTTP node differently in its executions only (a node renamed in
n8n between runs), so the gap resync cannot find their payload. Reference: docs/sources/n8n.md.

The package, by module: `models` (settings, workflows, send/prune/report bodies, constants),
`executions` (an execution, its items and their requests, delivery outcomes), `payloads` (the
events sent and their signed headers), `run_data` (how n8n stores an execution: workflow data,
run data, node errors), `instance` (`N8nData`: sending, pruning, the rate limit, the clock),
`public_api` (the routes under `/n8n/api/v1`, the cursor), `control` (the routes under
`/_sim/n8n`).
"""

from __future__ import annotations

from sync_platform_simulator.n8n.control import ClockAdvance, control_router
from sync_platform_simulator.n8n.executions import (
    Attempt,
    Execution,
    Item,
    delivery_outcomes,
    outcome,
)
from sync_platform_simulator.n8n.instance import N8nData
from sync_platform_simulator.n8n.models import (
    DEFAULT_API_KEY,
    DEFAULT_DELIVERY_ID,
    DEFAULT_ITEMS,
    DELIVERY_ID_FIELDS,
    HTTP_NODE,
    MAX_ITEMS,
    MAX_NODE_NAME,
    PAYLOAD_NODE,
    SEND_NODE,
    SIGN_NODE,
    WEBHOOK_PATH,
    WORKFLOW_KINDS,
    ApiRateLimit,
    AuthMode,
    BuildMode,
    DeliveryOutcomes,
    ExecutionStatus,
    Failure,
    ItemCount,
    N8nSettings,
    N8nWorkflow,
    NodeName,
    PruneRequest,
    SendReport,
    SendRequest,
    default_secret,
    default_workflow_id,
    iso_ms,
    item_range,
    js_json,
    js_normalized,
    node_names,
)
from sync_platform_simulator.n8n.payloads import make_event
from sync_platform_simulator.n8n.public_api import (
    API_PREFIX,
    DEFAULT_PAGE,
    MAX_PAGE,
    STATUS_FILTER,
    STATUS_MATCHES,
    ApiKey,
    N8n,
    encode_cursor,
    n8n_data,
    router,
)
from sync_platform_simulator.n8n.run_data import (
    ECONNREFUSED_MESSAGE,
    ENOTFOUND_MESSAGE,
    STATUS_CODE_MESSAGES,
    run_data,
    workflow_data,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_DELIVERY_ID",
    "DEFAULT_ITEMS",
    "DEFAULT_PAGE",
    "DELIVERY_ID_FIELDS",
    "ECONNREFUSED_MESSAGE",
    "ENOTFOUND_MESSAGE",
    "HTTP_NODE",
    "MAX_ITEMS",
    "MAX_NODE_NAME",
    "MAX_PAGE",
    "PAYLOAD_NODE",
    "SEND_NODE",
    "SIGN_NODE",
    "STATUS_CODE_MESSAGES",
    "STATUS_FILTER",
    "STATUS_MATCHES",
    "WEBHOOK_PATH",
    "WORKFLOW_KINDS",
    "ApiKey",
    "ApiRateLimit",
    "Attempt",
    "AuthMode",
    "BuildMode",
    "ClockAdvance",
    "DeliveryOutcomes",
    "Execution",
    "ExecutionStatus",
    "Failure",
    "Item",
    "ItemCount",
    "N8n",
    "N8nData",
    "N8nSettings",
    "N8nWorkflow",
    "NodeName",
    "PruneRequest",
    "SendReport",
    "SendRequest",
    "control_router",
    "default_secret",
    "default_workflow_id",
    "delivery_outcomes",
    "encode_cursor",
    "iso_ms",
    "item_range",
    "js_json",
    "js_normalized",
    "make_event",
    "n8n_data",
    "node_names",
    "outcome",
    "router",
    "run_data",
    "workflow_data",
]
