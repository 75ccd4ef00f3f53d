"""uvicorn's HTTP/1.1 protocol with a deadline for the request line and headers.

uvicorn waits for a request's headers as long as the client likes: a client that opens a
connection and sends nothing, or sends its headers a byte at a time, holds a worker's
connection forever, and a few such clients hold them all. Here each connection must complete
a request's headers within the deadline of opening (or of its first byte after a response);
otherwise it is closed. The body has its own deadline in the app (app.py).
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache

from uvicorn.protocols.http.h11_impl import H11Protocol

from sync_platform.receiver.settings import header_timeout_seconds

log = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """H11Protocol that closes a connection whose headers are late (`header_timeout`)."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first byte of a next request on a kept-alive connection
        super().data_received(data)
        if not self._between_requests() and self._header_timer is not None:
            self._header_timer.cancel()  # the headers are in
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._late, self.cycle)

    def _late(self, cycle_when_armed: object) -> None:
        self._header_timer = None
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.warning(
                "closed the connection of %s: no complete request headers within %g s",
                client,
                self.header_timeout,
            )
            self.transport.close()


def with_header_deadline(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class uvicorn takes as `http=`, with this deadline."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout": seconds})


@cache
def _deadline_from_environment() -> float:
    return header_timeout_seconds()


class HeaderDeadlineFromEnvironment(HeaderDeadlineProtocol):
    """The deadline from SYNC_PLATFORM_RECEIVER_HEADER_TIMEOUT_SECONDS, read in the process
    that serves. `sync-platform receiver --workers N` starts each worker in a process of its
    own and hands it the protocol class by pickling, by name: a class made at run time
    (`with_header_deadline`) cannot travel that way, this module-level one can."""

    @property
    def header_timeout(self) -> float:  # type: ignore[override]
        return _deadline_from_environment()
