"""The simulated n8n instance (`N8nData`): its workflows, executions and clock; sending
(executions run, webhooks delivered with retries), pruning, the public API's rate limit, and
the views the APIs serve."""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from sync_platform_simulator.environment import (
    N8N_API_KEY_ENV,
    N8N_WEBHOOK_SECRET_PREFIX,
    N8N_WORKFLOW_ID_PREFIX,
)
from sync_platform_simulator.n8n.executions import (
    Attempt,
    Execution,
    Item,
    _attempt_list,
    _seen_ok,
    delivery_outcomes,
    outcome,
)
from sync_platform_simulator.n8n.models import (
    WEBHOOK_PATH,
    ApiRateLimit,
    Failure,
    N8nSettings,
    N8nWorkflow,
    PruneRequest,
    SendReport,
    SendRequest,
    iso_ms,
    js_json,
    js_normalized,
    node_names,
)
from sync_platform_simulator.n8n.payloads import _request_headers, make_event
from sync_platform_simulator.n8n.run_data import run_data, workflow_data


class N8nData:
    """The simulated instance: workflows, executions, clock; every change under one lock."""

    def __init__(self, seed: int, settings: N8nSettings | None = None):
        self.settings = settings or N8nSettings()
        self.seed = seed
        self.rng = random.Random(f"n8n:{seed}")
        self.lock = threading.RLock()
        self.workflows = {w.key: w for w in self.settings.workflows}
        self.by_id = {w.id: w for w in self.settings.workflows}
        self._executions: dict[int, Execution] = {}
        self._ledger: dict[int, Execution] = {}  # every execution run, pruned ones too
        self._pruned: dict[int, str] = {}  # execution id → why ("retention" or "control")
        self._armed_prune: PruneRequest | None = None
        self._rate_windows: dict[str, tuple[float, int]] = {}  # API key → (start, requests)
        self._next_id = 1
        self._sequence: dict[str, int] = {}
        self._clock_offset = timedelta()

    # -- clock and retention ---------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self._clock_offset += timedelta(seconds=seconds)
            return self.now()

    def prune(self) -> list[str]:
        """Delete executions past the retention age or count, as n8n's pruning does: finished
        ones stopped at or before now - max age, and finished ones at or below the id that
        comes after the newest `max_count` (ExecutionRepository.softDeletePrunableExecutions).
        """
        with self.lock:
            cutoff = self.now() - timedelta(days=self.settings.retention_days)
            finished = {i for i, e in self._executions.items() if e.stopped_at is not None}
            gone = {i for i in finished if self._executions[i].stopped_at <= cutoff}  # type: ignore[operator]
            newest_first = sorted(self._executions, reverse=True)
            if self.settings.max_count and len(newest_first) > self.settings.max_count:
                boundary = newest_first[self.settings.max_count]
                gone |= {i for i in finished if i <= boundary}
            return self._delete(gone, "retention")

    def _delete(self, ids: set[int], why: str) -> list[str]:
        for execution_id in ids:
            del self._executions[execution_id]
            self._pruned[execution_id] = why
        return [str(i) for i in sorted(ids)]

    def prune_chosen(self, chosen: PruneRequest) -> tuple[list[str], list[str]]:
        """Prune now what `chosen` names; (pruned ids, named ids not prunable: unknown, gone
        or still running — n8n only prunes finished executions)."""
        with self.lock:
            if chosen.execution_ids is None and chosen.oldest is None:
                return self.prune(), []
            finished = [
                i
                for i, e in sorted(self._executions.items())
                if e.stopped_at is not None
                and (chosen.workflow_key is None or e.workflow.key == chosen.workflow_key)
            ]
            if chosen.oldest is not None:
                return self._delete(set(finished[: chosen.oldest]), "control"), []
            named = chosen.execution_ids or []
            prunable = set(finished)
            ids = {int(i) for i in named if i.isdigit() and int(i) in prunable}
            skipped = [i for i in named if not i.isdigit() or int(i) not in ids]
            return self._delete(ids, "control"), skipped

    def arm_prune(self, chosen: PruneRequest) -> None:
        with self.lock:
            self._armed_prune = chosen

    def after_list(self, workflow_id: str | None) -> list[str]:
        """Run the prune armed for "after the next list", if any (once): the next list of
        its `workflow_key`'s workflow when it names one, else the next list at all."""
        with self.lock:
            armed = self._armed_prune
            if armed is None:
                return []
            if armed.workflow_key is not None and (
                workflow_id != self.workflows[armed.workflow_key].id
            ):
                return []
            self._armed_prune = None
            return self.prune_chosen(armed)[0]

    def executions(self) -> list[Execution]:
        """Every execution still kept, newest first."""
        with self.lock:
            self.prune()
            return [self._executions[i] for i in sorted(self._executions, reverse=True)]

    def execution(self, execution_id: str) -> Execution | None:
        if not execution_id.isdigit():
            return None
        with self.lock:
            self.prune()
            return self._executions.get(int(execution_id))

    # -- the public API's rate limit -------------------------------------------------------

    def set_rate_limit(self, limit: ApiRateLimit | None) -> None:
        with self.lock:
            self.settings.rate_limit = limit
            self._rate_windows.clear()

    def take_read(self, api_key: str) -> tuple[bool, dict[str, str]]:
        """Count one read (GET) for this API key: (allowed, rate-limit headers). A refused
        request does not count, as n8n's docs say."""
        limit = self.settings.rate_limit
        if limit is None:
            return True, {}
        now = time.monotonic()
        with self.lock:
            start, used = self._rate_windows.get(api_key, (now, 0))
            if now - start >= limit.window_seconds:
                start, used = now, 0
            left = start + limit.window_seconds - now
            allowed = used < limit.read_limit
            used += allowed
            self._rate_windows[api_key] = (start, used)
        headers = {
            "X-RateLimit-Limit": str(limit.read_limit),
            "X-RateLimit-Remaining": str(limit.read_limit - used),
            "X-RateLimit-Reset": str(math.ceil(time.time() + left)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(left)))
        return allowed, headers

    # -- running workflows -----------------------------------------------------------------

    def workflow(self, key: str) -> N8nWorkflow:
        try:
            return self.workflows[key]
        except KeyError:
            raise KeyError(f"no simulated n8n workflow {key!r}") from None

    def _start(self, workflow: N8nWorkflow, rng: random.Random, plan: SendRequest) -> Execution:
        with self.lock:
            execution_id = str(self._next_id)
            self._next_id += 1
            started = self.now()
            low, high = workflow.item_range
            count = rng.randint(low, high) if high > low else low
            items = []
            for index in range(count):
                sequence = self._sequence.get(workflow.key, 0) + 1
                self._sequence[workflow.key] = sequence
                event = make_event(workflow, rng, sequence, started)
                dropped = rng.random() < plan.drop_rate
                duplicated = not dropped and rng.random() < plan.duplicate_rate
                if workflow.build == "convention":
                    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                else:  # the HTTP node sends the item's json, as JSON.stringify writes it
                    event = js_normalized(event)
                    body = js_json(event)
                delivery_id = workflow.delivery_id_template.format(
                    workflow_id=workflow.id, execution_id=execution_id, item_index=index
                )
                items.append(Item(index, delivery_id, event, body, dropped, duplicated))
            failure: Failure | None = None
            error_rate = plan.error_before_send_rate + plan.error_in_send_rate
            if error_rate:
                draw = rng.random()
                if draw < plan.error_before_send_rate:
                    failure = "before_send"
                elif draw < error_rate:
                    failure = "in_send"
            execution = Execution(
                id=execution_id,
                workflow=workflow,
                started_at=started,
                timestamp=int(time.time()),
                items=items,
                send_node=plan.send_node or workflow.send_node_name,
                failure=failure,
            )
            for item in items:
                if failure:  # nothing leaves n8n: no drop, no duplicate
                    item.dropped = item.duplicated = False
                item.headers = _request_headers(workflow, execution, item)
            self._executions[execution.int_id] = execution
            self._ledger[execution.int_id] = execution
            return execution

    def planned_workflow(self, plan: SendRequest) -> N8nWorkflow:
        """The workflow as this send runs it (its overrides applied); ValueError for an
        override n8n would refuse (a `send_node` named as another node), before any
        execution starts."""
        workflow = self.workflow(plan.workflow_key)
        overrides = {
            name: value
            for name, value in {
                "auth": plan.auth,
                "secret": plan.secret,
                "header_name": plan.header_name,
                "build": plan.build,
                "items": plan.items,
            }.items()
            if value is not None
        }
        if overrides:
            data = workflow.model_dump()
            if plan.build is not None and plan.items is None and plan.build != "multi_item":
                data["items"] = None
            try:
                workflow = N8nWorkflow.model_validate(data | overrides)
            except ValidationError as exc:
                problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"{workflow.key}: {problems}") from None
        # n8n keeps node names unique within a workflow.
        if plan.send_node is not None and plan.send_node in node_names(workflow)[:-1]:
            raise ValueError(
                f"send_node {plan.send_node!r} is already another node of {workflow.key}"
            )
        return workflow

    async def send(self, plan: SendRequest) -> SendReport:
        """Run `plan.count` executions, deliver their webhooks, and report what happened."""
        workflow = self.planned_workflow(plan)
        rng = (
            random.Random(f"n8n-send:{plan.seed}:{workflow.key}")
            if plan.seed is not None
            else self.rng
        )
        executions = [self._start(workflow, rng, plan) for _ in range(plan.count)]
        url = plan.target.rstrip("/") + WEBHOOK_PATH.format(key=workflow.key)
        limit = asyncio.Semaphore(plan.concurrency)
        tries = plan.max_tries or self.settings.max_tries
        wait = (
            plan.wait_between_tries_ms
            if plan.wait_between_tries_ms is not None
            else self.settings.wait_between_tries_ms
        ) / 1000
        continue_on_fail = self.settings.continue_on_fail

        # Each execution in flight sends through a client of its own, as n8n's workers do:
        # one pool shared by them all costs httpcore a scan of every connection per request,
        # which halved what a send could deliver a second (one TLS context serves them all).
        tls = httpx.create_ssl_context()
        idle: list[httpx.AsyncClient] = []
        opened: list[httpx.AsyncClient] = []

        async def run(execution: Execution) -> None:
            async with limit:
                if not idle:
                    opened.append(httpx.AsyncClient(timeout=plan.timeout_seconds, verify=tls))
                    idle.append(opened[-1])
                client = idle.pop()
                try:
                    if plan.delay_ms:
                        await asyncio.sleep(plan.delay_ms / 1000)
                    if execution.failure is not None:
                        pass  # failed before any request left n8n
                    elif workflow.build == "convention":
                        item = execution.items[0]
                        if not item.dropped:
                            for _ in range(2 if item.duplicated else 1):
                                await self._deliver(client, url, item, tries, wait)
                    else:
                        await self._run_http_node(
                            client, url, execution, tries, wait, continue_on_fail
                        )
                    self._finish(execution, continue_on_fail)
                finally:
                    idle.append(client)

        try:
            await asyncio.gather(*(run(execution) for execution in executions))
        finally:
            for client in opened:
                await client.aclose()

        return self._report(workflow, executions)

    def _report(self, workflow: N8nWorkflow, executions: list[Execution]) -> SendReport:
        responses: dict[str, int] = {}
        for execution in executions:
            for attempt in execution.attempts:
                name = str(attempt.status) if attempt.status is not None else "error"
                responses[name] = responses.get(name, 0) + 1
        return SendReport(
            workflow_key=workflow.key,
            workflow_id=workflow.id or "",
            build=workflow.build,
            executions=[e.id for e in executions],
            delivered=[e.id for e in executions if e.delivered],
            dropped=[e.id for e in executions if e.dropped],
            duplicated=[e.id for e in executions if e.duplicated],
            failed=[
                e.id
                for e in executions
                if e.failure is None and any(outcome(e, i) == "failed" for i in e.items)
            ],
            errored_before_send=[e.id for e in executions if e.failure == "before_send"],
            errored_in_send=[e.id for e in executions if e.failure == "in_send"],
            deliveries=delivery_outcomes(executions),
            requests=sum(len(e.attempts) for e in executions),
            responses=dict(sorted(responses.items())),
        )

    def send_sync(self, plan: SendRequest) -> SendReport:
        """`send` for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.send(plan))

    async def _post(self, client: httpx.AsyncClient, url: str, item: Item) -> Attempt:
        """One request for one item; its answer is remembered with the item."""
        try:
            response = await client.post(url, content=item.body.encode(), headers=item.headers)
        except httpx.HTTPError as exc:
            attempt = Attempt(None, f"{exc.__class__.__name__}: {exc}")
        else:
            try:
                answer: Any = response.json()
            except ValueError:
                answer = response.text[:500]
            attempt = Attempt(response.status_code, body=answer)
        item.attempts.append(attempt)
        return attempt

    async def _deliver(
        self, client: httpx.AsyncClient, url: str, item: Item, tries: int, wait: float
    ) -> None:
        """One run of a single-item HTTP Request node, with its fixed-interval retries. Like
        n8n, a retry sends the node's input again: the same headers, signature and timestamp."""
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
            item.seen = await self._post(client, url, item)
            if item.seen.ok:
                return

    async def _run_http_node(
        self,
        client: httpx.AsyncClient,
        url: str,
        execution: Execution,
        tries: int,
        wait: float,
        continue_on_fail: bool,
    ) -> None:
        """The HTTP Request node over all items (one request each, sent together), run again
        as a whole, every item resent, as n8n's WorkflowExecute does with Retry On Fail: with
        "On Error: Continue" while its FIRST output item is an error (a later item's failure
        is not retried), else while any item failed (the node threw). A dropped item is lost
        on every run and never makes the node run again. A duplicated item's first request
        is sent twice (the network repeated it)."""
        items = [item for item in execution.items if not item.dropped]

        async def post(item: Item, first_run: bool) -> None:
            item.seen = await self._post(client, url, item)
            if first_run and item.duplicated:
                await self._post(client, url, item)

        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(wait)
            await asyncio.gather(*(post(item, attempt == 0) for item in items))
            if continue_on_fail:
                head = execution.items[0]
                if head.dropped or _seen_ok(head):
                    return
            elif all(_seen_ok(item) for item in items):
                return

    def _finish(self, execution: Execution, continue_on_fail: bool) -> None:
        with self.lock:
            execution.stopped_at = self.now()
            if execution.failure is not None:
                execution.status = "error"
            elif continue_on_fail:
                execution.status = "success"
            elif execution.workflow.build == "convention":
                item = execution.items[0]
                execution.status = "error" if not item.dropped and not item.delivered else "success"
            else:
                sent = [item for item in execution.items if not item.dropped]
                execution.status = "success" if all(map(_seen_ok, sent)) else "error"

    # -- the API's view ---------------------------------------------------------------------

    def summary(self, execution: Execution, include_data: bool) -> dict[str, Any]:
        """An execution as n8n's public API returns it."""
        summary: dict[str, Any] = {
            "id": execution.id,
            "finished": execution.status == "success",
            "mode": "webhook",
            "retryOf": None,
            "retrySuccessId": None,
            "status": execution.status,
            "createdAt": iso_ms(execution.started_at),
            "startedAt": iso_ms(execution.started_at),
            "stoppedAt": iso_ms(execution.stopped_at) if execution.stopped_at else None,
            "deletedAt": None,
            "workflowId": execution.workflow.id,
            "waitTill": None,
            "customData": {},
        }
        if include_data:
            summary["data"] = run_data(execution)
            summary["workflowData"] = workflow_data(execution.workflow, execution.send_node)
        return summary

    def control_view(self, execution: Execution) -> dict[str, Any]:
        """An execution as `GET /_sim/n8n/executions` shows it (its first item at the top)."""
        return {
            "id": execution.id,
            "workflow_key": execution.workflow.key,
            "workflow_id": execution.workflow.id,
            "build": execution.workflow.build,
            "status": execution.status,
            "failure": execution.failure,
            "webhook_id": execution.webhook_id,
            "started_at": iso_ms(execution.started_at),
            "delivered": execution.delivered,
            "dropped": execution.dropped,
            "duplicated": execution.duplicated,
            "send_node": execution.send_node,
            "attempts": _attempt_list(execution.items[0]),
            "event": execution.event,
            "items": [
                {
                    "index": item.index,
                    "delivery_id": item.delivery_id,
                    "outcome": outcome(execution, item),
                    "dropped": item.dropped,
                    "duplicated": item.duplicated,
                    "attempts": _attempt_list(item),
                    "event": item.event,
                }
                for item in execution.items
            ],
        }

    def deliveries(self, workflow_key: str | None = None) -> dict[str, Any]:
        """Per workflow, everything run since the reset (pruned executions included): which
        executions errored where, and what became of every delivery id."""
        with self.lock:
            ran = [self._ledger[i] for i in sorted(self._ledger)]
            keys = [workflow_key] if workflow_key else list(self.workflows)
            result: dict[str, Any] = {}
            for key in keys:
                mine = [e for e in ran if e.workflow.key == key]
                result[key] = {
                    "workflow_id": self.workflows[key].id,
                    "executions": [e.id for e in mine],
                    "succeeded": [e.id for e in mine if e.status == "success"],
                    "errored": [e.id for e in mine if e.status == "error"],
                    "errored_before_send": [e.id for e in mine if e.failure == "before_send"],
                    "errored_in_send": [e.id for e in mine if e.failure == "in_send"],
                    "running": [e.id for e in mine if e.status == "running"],
                    "pruned": [e.id for e in mine if e.int_id in self._pruned],
                    "deliveries": delivery_outcomes(mine).model_dump(),
                    "by_delivery": {
                        item.delivery_id: {
                            "execution_id": e.id,
                            "item_index": item.index,
                            "outcome": outcome(e, item),
                            "duplicated": item.duplicated,
                            "attempts": _attempt_list(item),
                        }
                        for e in mine
                        if e.failure != "before_send"
                        for item in e.items
                    },
                }
            return result

    def environment(self) -> dict[str, str]:
        """What the platform needs to receive these workflows and list their executions
        (N8N_BASE_URL is added by `simulator_environment`, which knows the address)."""
        env = {N8N_API_KEY_ENV: self.settings.api_key}
        for workflow in self.settings.workflows:
            name = workflow.key.upper()
            env[N8N_WEBHOOK_SECRET_PREFIX + name] = workflow.secret or ""
            env[N8N_WORKFLOW_ID_PREFIX + name] = workflow.id or ""
        return env
