"""Fault injection, set per run over the control API, applied to source endpoints only.

Counters (`fail_next`, `rate_limit_next`, …) make a test's faults exact; the rates
(`error_rate`, `rate_limit_rate`, `truncate_rate`, `slow_rate`, `hang_rate`) make a realistic
mix for a long run. Every source request draws once from a RNG seeded from the simulator seed
(re-seeded whenever a plan is set), and that one draw picks at most one of the rated faults by
cumulative probability, so the rates add up and even random faults repeat run after run for
the same requests in the same order. The control API under /_sim is never faulted: a test must
always be able to reset, inspect and repair the simulator.

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
from enum import StrEnum
from typing import Any, Self

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sim"
CLIENT_CLOSED_REQUEST = 499  # nginx's code: the client hung up while a delay was injected


class FaultKind(StrEnum):
    """An injected fault, as counted in `GET /_sim/stats` under "faults"."""

    ERRORED = "errored"  # 503
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After
    TRUNCATED = "truncated"  # a 200 whose body is cut in half
    SLOWED = "slowed"  # delayed by slow_ms
    HUNG = "hung"  # stalled for hang_seconds


# The rated faults in the order of the cumulative draw: a draw below error_rate is an error,
# below error_rate + rate_limit_rate a rate limit, and so on. error_rate comes first, so a plan
# with only error_rate fails the same requests as before the other rates existed.
RATES: tuple[tuple[str, FaultKind], ...] = (
    ("error_rate", FaultKind.ERRORED),
    ("rate_limit_rate", FaultKind.RATE_LIMITED),
    ("truncate_rate", FaultKind.TRUNCATED),
    ("slow_rate", FaultKind.SLOWED),
    ("hang_rate", FaultKind.HUNG),
)


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
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after: float = Field(default=1.0, ge=0)
    truncate_next: int = Field(default=0, ge=0)
    truncate_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: int = Field(default=0, ge=0)
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    slow_ms: int = Field(default=1000, ge=0)
    hang_next: int = Field(default=0, ge=0)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    hang_seconds: float = Field(default=30.0, ge=0)
    drop_keys: list[DroppedKey] = Field(default_factory=list)
    # Only source paths starting with one of these meet faults (every source path if
    # empty); the others are served as if no plan were set, and draw nothing.
    paths: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rates_fit_in_one_draw(self) -> Self:
        """One draw picks at most one rated fault, so the rates together are at most 1."""
        rates = {name: getattr(self, name) for name, _ in RATES}
        total = sum(rates.values())
        if total > 1 + 1e-9:  # 0.1 + 0.2 + 0.7 is a hair above 1 in floating point
            named = " + ".join(f"{name} {rate:g}" for name, rate in rates.items() if rate)
            raise ValueError(f"the rates add up to more than 1: {named} = {total:g}")
        return self


@dataclass(frozen=True)
class InjectedFailure:
    kind: FaultKind
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

    def applies_to(self, path: str) -> bool:
        paths = self._plan.paths
        return not paths or any(path.startswith(prefix) for prefix in paths)

    def draw(self) -> FaultKind | None:
        """The rated fault of one source request, if any: exactly one draw per request
        (whatever the counters do with it), so the n-th request after a plan is set meets
        the same fate for the same seed."""
        with self._lock:
            draw = self._rng.random()
            threshold = 0.0
            for name, kind in RATES:
                threshold += getattr(self._plan, name)
                if draw < threshold:
                    return kind
        return None

    def take_delay(self, drawn: FaultKind | None = None) -> tuple[float, list[FaultKind]]:
        """Seconds to stall this request, and the faults that stall it: `latency_ms` always
        (not counted as a fault), `slow_ms` if a slow was drawn, and `hang_seconds` once if
        `hang_next` is due or a hang was drawn (the counter is used up first either way)."""
        plan = self._plan
        seconds = plan.latency_ms / 1000
        faults = []
        if drawn is FaultKind.SLOWED:
            seconds += plan.slow_ms / 1000
            faults.append(FaultKind.SLOWED)
        if self._take("hang_next") or drawn is FaultKind.HUNG:
            seconds += plan.hang_seconds
            faults.append(FaultKind.HUNG)
        return seconds, faults

    def take_failure(self, drawn: FaultKind | None = None) -> InjectedFailure | None:
        """The error to answer instead of the real response, if one is due: the counters
        first (`down`, `fail_next`, `rate_limit_next`), then a drawn error or rate limit."""
        if self._plan.down or self._take("fail_next"):
            return _outage()
        if self._take("rate_limit_next"):
            return self._rate_limited()
        if drawn is FaultKind.ERRORED:
            return _outage()
        if drawn is FaultKind.RATE_LIMITED:
            return self._rate_limited()
        return None

    def _rate_limited(self) -> InjectedFailure:
        retry_after = f"{self._plan.retry_after:g}"
        return InjectedFailure(
            FaultKind.RATE_LIMITED, 429, {"error": "rate limited"}, {"Retry-After": retry_after}
        )

    def take_truncation(self, drawn: FaultKind | None = None) -> bool:
        """Whether to cut this successful response: `truncate_next` first, else a drawn
        truncation (asked only for a 200, so an error response uses up neither)."""
        return self._take("truncate_next") or drawn is FaultKind.TRUNCATED

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


def _outage() -> InjectedFailure:
    return InjectedFailure(FaultKind.ERRORED, 503, {"error": "simulated outage"}, {})


class RequestStats:
    """Source requests served, counted by (path, status), and the faults injected, counted
    by kind, so a test can prove a fault fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[FaultKind] = Counter()

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self._counts[(path, status)] += 1

    def fault(self, kind: FaultKind) -> None:
        with self._lock:
            self._faults[kind] += 1

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._faults.clear()

    def faults(self) -> dict[str, int]:
        """Every kind, zeros included, so a reader need not guess a missing key."""
        with self._lock:
            return {kind.value: self._faults[kind] for kind in FaultKind}

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
        if not self.faults.applies_to(path):
            await self._serve(scope, receive, send, path, None)
            return
        drawn = self.faults.draw()
        delay, stalls = self.faults.take_delay(drawn)
        for kind in stalls:
            self.stats.fault(kind)
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
        failure = self.faults.take_failure(drawn)
        if failure is not None:
            self.stats.fault(failure.kind)
            self.stats.record(path, failure.status)
            body = json.dumps(failure.body).encode()
            headers = [(k.lower().encode(), v.encode()) for k, v in failure.headers.items()]
            await _send_whole(send, failure.status, [_json_type(), *headers], body)
            return
        await self._serve(scope, receive, send, path, drawn)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, path: str, drawn: FaultKind | None
    ) -> None:
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
        if status == 200 and self.faults.take_truncation(drawn):
            body = body[: len(body) // 2]
            self.stats.fault(FaultKind.TRUNCATED)
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
