"""Fault injection for the simulator, set per run over the control API.

Counters (`fail_next`, `rate_limit_next`, …) make a test's faults exact and repeatable;
`error_rate` draws from a RNG seeded from the simulator seed, so even random faults repeat.
Faults apply to source endpoints only, never to the control API under /_sim.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DroppedKey(BaseModel):
    key: str
    times: int = Field(default=1, description="-1: always, listings included (a lost record)")


class FaultPlan(BaseModel):
    error_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next: int = Field(default=0, ge=0)
    down: bool = False
    rate_limit_next: int = Field(default=0, ge=0)
    retry_after: float = Field(default=1.0, ge=0)
    truncate_next: int = Field(default=0, ge=0)
    latency_ms: int = Field(default=0, ge=0)
    hang_next: int = Field(default=0, ge=0)
    hang_seconds: float = Field(default=30.0, ge=0)
    drop_keys: list[DroppedKey] = []


class FaultInjector:
    """The current plan and its counters; every decrement happens under one lock."""

    def __init__(self, seed: int):
        self._lock = threading.Lock()
        self.plan = FaultPlan()
        self._rng = random.Random(seed)

    def replace(self, plan: FaultPlan, seed: int | None = None) -> None:
        with self._lock:
            self.plan = plan.model_copy(deep=True)
            if seed is not None:
                self._rng = random.Random(seed)

    def _take(self, counter: str) -> bool:
        with self._lock:
            left = getattr(self.plan, counter)
            if left > 0:
                setattr(self.plan, counter, left - 1)
                return True
            return False

    def status_before_response(self) -> tuple[int, dict[str, str]] | None:
        """An error status to answer instead of the real response, or None."""
        if self.plan.down or self._take("fail_next"):
            return 503, {}
        if self._take("rate_limit_next"):
            return 429, {"Retry-After": f"{self.plan.retry_after:g}"}
        with self._lock:
            if self.plan.error_rate and self._rng.random() < self.plan.error_rate:
                return 503, {}
        return None

    def delay_seconds(self) -> float:
        hang = self.plan.hang_seconds if self._take("hang_next") else 0.0
        return self.plan.latency_ms / 1000 + hang

    def take_truncate(self) -> bool:
        return self._take("truncate_next")

    def drops(self, key: str, *, listing: bool) -> bool:
        """Is this record left out of the response being built?"""
        with self._lock:
            for dropped in self.plan.drop_keys:
                if dropped.key != key:
                    continue
                if dropped.times < 0:
                    return True
                if listing or dropped.times == 0:
                    return False
                dropped.times -= 1
                return True
        return False


class FaultMiddleware:
    """ASGI middleware: count requests, then delay, fail, rate-limit or truncate as planned."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, stats: Counter):
        self.app = app
        self.injector = injector
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        delay = self.injector.delay_seconds()
        if delay:
            await asyncio.sleep(delay)
        failure = self.injector.status_before_response()
        if failure:
            status, headers = failure
            body = b'{"error": "simulated outage"}' if status == 503 else b'{"error": "slow down"}'
            self.stats[(path, status)] += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ]
                    + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._respond(scope, receive, send, path)

    async def _respond(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = start["status"]
        if status == 200 and self.injector.take_truncate():
            body = body[: len(body) // 2]
        self.stats[(path, status)] += 1
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
