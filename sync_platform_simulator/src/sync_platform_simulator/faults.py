"""Fault injection, set per run over the control API, applied to source endpoints only.

Counters (`fail_next`, `rate_limit_next`, …) make a test's faults exact; `error_rate` draws
from a RNG seeded from the simulator seed (re-seeded whenever a plan is set), so even random
faults repeat run after run. The control API under /_sim is never faulted: a test must always
be able to reset, inspect and repair the simulator.

Request-level faults (delay, 503, 429, truncation) live in `FaultMiddleware`; record-level
faults (`drop_keys`) need to know which records a response holds, so the source routes ask
the `FaultInjector` themselves.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sim"
CLIENT_CLOSED_REQUEST = 499  # nginx's code: the client hung up while a delay was injected


class DroppedKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    times: int = Field(default=1, ge=-1, description="-1: always, listings included")


class FaultPlan(BaseModel):
    """What goes wrong, and how often. Unknown fields are refused, so a typo is not a no-op."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next: int = Field(default=0, ge=0)
    down: bool = False
    rate_limit_next: int = Field(default=0, ge=0)
    retry_after: float = Field(default=1.0, ge=0)
    truncate_next: int = Field(default=0, ge=0)
    latency_ms: int = Field(default=0, ge=0)
    hang_next: int = Field(default=0, ge=0)
    hang_seconds: float = Field(default=30.0, ge=0)
    drop_keys: list[DroppedKey] = Field(default_factory=list)


@dataclass(frozen=True)
class InjectedFailure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class FaultInjector:
    """The current plan and what is left of its counters; every decrement holds one lock,
    because source requests are served concurrently."""

    def __init__(self, seed: int):
        self._lock = threading.Lock()
        self._seed = seed
        self._plan = FaultPlan()
        self._rng = random.Random(f"faults:{seed}")

    def reset(self, seed: int) -> None:
        """Clear the plan and re-seed from a new simulator seed."""
        with self._lock:
            self._seed = seed
        self.replace(FaultPlan())

    def replace(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan.model_copy(deep=True)
            self._rng = random.Random(f"faults:{self._seed}")

    def snapshot(self) -> FaultPlan:
        """The plan as it stands now: counters show what is left."""
        with self._lock:
            return self._plan.model_copy(deep=True)

    def _take(self, counter: str) -> bool:
        with self._lock:
            left = getattr(self._plan, counter)
            if left > 0:
                setattr(self._plan, counter, left - 1)
                return True
            return False

    def take_delay(self) -> float:
        """Seconds to stall this request: `latency_ms` always, plus a hang if one is due."""
        hang = self._plan.hang_seconds if self._take("hang_next") else 0.0
        return self._plan.latency_ms / 1000 + hang

    def take_failure(self) -> InjectedFailure | None:
        """The error to answer instead of the real response, if one is due."""
        if self._plan.down or self._take("fail_next"):
            return InjectedFailure(503, {"error": "simulated outage"}, {})
        if self._take("rate_limit_next"):
            retry_after = f"{self._plan.retry_after:g}"
            return InjectedFailure(429, {"error": "rate limited"}, {"Retry-After": retry_after})
        with self._lock:
            if self._plan.error_rate and self._rng.random() < self._plan.error_rate:
                return InjectedFailure(503, {"error": "simulated outage"}, {})
        return None

    def take_truncation(self) -> bool:
        return self._take("truncate_next")

    def lost_keys(self) -> frozenset[str]:
        """Records the source has lost everywhere (`times: -1`), key listings included."""
        with self._lock:
            return frozenset(d.key for d in self._plan.drop_keys if d.times < 0)

    def drop_from_page(self, page: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The page's records minus those due to be silently dropped from this response.

        Only a response that actually holds the record uses up one of its `times`.
        """
        kept = []
        with self._lock:
            pending = {d.key: d for d in reversed(self._plan.drop_keys) if d.times > 0}
            for key, record in page:
                dropped = pending.get(key)
                if dropped is not None and dropped.times > 0:
                    dropped.times -= 1
                    continue
                kept.append(record)
        return kept


class RequestStats:
    """Source requests served, counted by (path, status), so a test can prove a fault fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self._counts[(path, status)] += 1

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            counts = sorted(self._counts.items())
        return [{"path": path, "status": status, "count": n} for (path, status), n in counts]


def fault_injector(request: Request) -> FaultInjector:
    """FastAPI dependency: the injector of the simulator serving this request."""
    return request.app.state.simulator.faults


class FaultMiddleware:
    """ASGI middleware in front of every source endpoint: delay, fail, rate-limit or truncate
    as planned, and count what was served."""

    def __init__(self, app: ASGIApp, faults: FaultInjector, stats: RequestStats):
        self.app = app
        self.faults = faults
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        delay = self.faults.take_delay()
        if delay:
            try:
                receive, connected = await _pause(delay, receive)
            except asyncio.CancelledError:
                # The server is stopping under a hang: answer instead of dying mid-request
                # (the task ends right after, which is all the cancellation asks for).
                self.stats.record(path, 503)
                body = json.dumps({"error": "simulator shutting down"}).encode()
                await _send_whole(send, 503, [_json_type()], body)
                return
            if not connected:
                self.stats.record(path, CLIENT_CLOSED_REQUEST)
                return
        failure = self.faults.take_failure()
        if failure is not None:
            self.stats.record(path, failure.status)
            body = json.dumps(failure.body).encode()
            headers = [(k.lower().encode(), v.encode()) for k, v in failure.headers.items()]
            await _send_whole(send, failure.status, [_json_type(), *headers], body)
            return
        await self._serve(scope, receive, send, path)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Let the route answer, buffered, so a successful body can be cut short."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, capture)
        except Exception:
            self.stats.record(path, 500)
            raise
        body = b"".join(chunks)
        status = start["status"]
        if status == 200 and self.faults.take_truncation():
            body = body[: len(body) // 2]
        self.stats.record(path, status)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await _send_whole(send, status, headers, body)


async def _pause(seconds: float, receive: Receive) -> tuple[Receive, bool]:
    """Stall, but stop as soon as the client hangs up (as a timed-out client does): a hang
    never outlives its client, and its 499 is counted at once, not seconds into a later test.

    Reading for the hang-up means reading the request body first; it is replayed to the route.
    Returns the receive channel to use from now on and whether the client is still there.
    """
    buffered: list[Message] = []
    while True:
        message = await receive()
        buffered.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    if buffered[-1]["type"] == "http.disconnect":
        return receive, False
    hang_up = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({hang_up}, timeout=seconds)
    finally:
        hang_up.cancel()
    if done:
        return receive, False

    async def replay() -> Message:
        return buffered.pop(0) if buffered else await receive()

    return replay, True


def _json_type() -> tuple[bytes, bytes]:
    return (b"content-type", b"application/json")


async def _send_whole(send: Send, status: int, headers: list, body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
