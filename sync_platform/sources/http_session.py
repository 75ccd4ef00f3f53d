"""The HTTP layer every source client uses: timeouts, bounded retries with exponential
backoff and jitter (stamina), Retry-After honoured over the computed backoff, and a
circuit breaker per source (pybreaker) so a dead source fails fast and says so.

Plain code, no Dagster: clients stay usable from the CLI, tests and benchmarks.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pybreaker
import stamina

from sync_platform.errors import NetworkError, SourceDownError, SourceUnavailableError
from sync_platform.sources import shared_state

log = logging.getLogger("sync_platform.http")


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 5
    total_seconds: float = 120.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    max_retry_after: float = 120.0  # a server asking for longer than this is treated as down
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 60.0


class RetryableError(NetworkError):
    """A response worth retrying: 5xx, 429, or a 200 whose body is cut short."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """429: the source asks us to slow down; not a fault, so the breaker ignores it."""


class HttpStatusError(NetworkError):
    """A 4xx the client cannot fix by retrying (bad credentials, missing resource …)."""

    def __init__(self, message: str, *, status: int, body: str):
        super().__init__(message)
        self.status = status
        self.body = body


_breakers: dict[tuple[str, object], pybreaker.CircuitBreaker] = {}


def breaker_for(
    source: str, settings: RetrySettings, exclude: tuple[type[Exception], ...] = ()
) -> pybreaker.CircuitBreaker:
    """One breaker per source, shared by every client of that source: across processes when
    the process is bound to a database (shared_state.py), else within the process; the
    newest client's settings apply. Errors of the `exclude` types (and 429s and 4xx) do not
    count as failures."""
    engine = shared_state.bound_engine()
    key = (source, engine.url if engine is not None else None)
    if key not in _breakers:
        _breakers[key] = pybreaker.CircuitBreaker(
            exclude=[RateLimitedError, HttpStatusError, *exclude],
            throw_new_error_on_trip=False,
            name=source,
            state_storage=shared_state.breaker_storage(source),
        )
    breaker = _breakers[key]
    breaker.fail_max = settings.breaker_fail_max
    breaker.reset_timeout = settings.breaker_reset_seconds
    return breaker


def reset_breakers() -> None:
    """Close every breaker of the database this process is bound to, or of none (tests, and a
    long-lived process after an operator fixed a source); forget those of other databases,
    which may be gone."""
    engine = shared_state.bound_engine()
    current = engine.url if engine is not None else None
    for key in list(_breakers):
        if key[1] == current:
            _breakers[key].close()
        else:
            del _breakers[key]


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


class SourceHttpClient:
    """JSON over HTTP for one source. Secrets travel in headers and never appear in errors."""

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_seconds: float = 30.0,
        retry: RetrySettings | None = None,
        transport: httpx.BaseTransport | None = None,
        before_request: Callable[[], object] | None = None,
        final_429: Callable[[str], bool] | None = None,
    ):
        self.source = source
        # a 429 whose body this says is final (a spent quota, not a pace) is not retried
        self.final_429 = final_429
        self.retry = retry or RetrySettings()
        self.breaker = breaker_for(source, self.retry)
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers or {},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            follow_redirects=False,
            event_hooks={"request": [lambda _request: before_request()]} if before_request else {},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SourceHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _backoff(self, exc: Exception) -> bool | float:
        """stamina's hook: retry or not, and a Retry-After that overrides the backoff."""
        if isinstance(exc, RetryableError):
            if exc.retry_after is not None:
                return min(exc.retry_after, self.retry.max_retry_after)
            return True
        return isinstance(exc, httpx.TransportError)

    def _attempt(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, path, **kwargs)
        status = response.status_code
        where = f"{self.source}: {method} {path}"
        if status == 429 and self.final_429 is not None and self.final_429(response.text):
            raise HttpStatusError(
                f"{where} answered 429: {_excerpt(response.text)}", status=429, body=response.text
            )
        if status == 429:
            raise RateLimitedError(
                f"{where} was rate limited (429)",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise RetryableError(
                f"{where} answered {status}: {_excerpt(response.text)}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise HttpStatusError(
                f"{where} answered {status}: {_excerpt(response.text)}",
                status=status,
                body=response.text,
            )
        try:
            # A declared charset wins (legacy systems still send ISO-8859-1 JSON);
            # otherwise JSON's own UTF-8/16/32 detection applies.
            if "charset=" in response.headers.get("content-type", "").lower():
                return json.loads(response.text)
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RetryableError(
                f"{where} returned a body that is not complete JSON ({exc.__class__.__name__})",
                status=status,
            ) from None

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON, retrying what is worth retrying."""
        last_error: Exception | None = None
        try:
            for attempt in stamina.retry_context(
                on=self._backoff,
                attempts=self.retry.attempts,
                timeout=self.retry.total_seconds,
                wait_initial=self.retry.wait_initial,
                wait_max=self.retry.wait_max,
                wait_jitter=self.retry.wait_jitter,
            ):
                with attempt:
                    try:
                        return self.breaker.call(self._attempt, method, path, **kwargs)
                    except (RetryableError, httpx.TransportError) as exc:
                        last_error = exc
                        log.warning(
                            "%s: %s %s failed (attempt %d of %d): %s",
                            self.source,
                            method,
                            path,
                            attempt.num,
                            self.retry.attempts,
                            exc,
                        )
                        raise
        except pybreaker.CircuitBreakerError:
            raise SourceDownError(
                f"{self.source}: circuit breaker is open after {self.retry.breaker_fail_max} "
                f"consecutive failures; requests are refused for up to "
                f"{self.retry.breaker_reset_seconds:.0f} s (last error: {last_error})",
                hint=f"check that {self.source} is up and its base URL is right, then re-run",
            ) from last_error
        except (RetryableError, httpx.TransportError) as exc:
            raise SourceUnavailableError(
                f"{self.source}: {method} {path} still failing after "
                f"{self.retry.attempts} attempts: {exc}",
                hint=f"check that {self.source} is up and reachable, then re-run the sync",
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request_json("GET", path, params=params)
