"""Group commit in front of the inbox, for the receiver's event loop.

Deliveries that arrive while a transaction is in flight wait
and go into the next one, one multi-row INSERT and one commit (one fsync) for all of them.
Every request is answered only after the transaction holding its row has committed, so a
2xx still means "durably stored"; an idle receiver writes a batch of one at once, so nothing
waits on a timer. A batch the database refuses is retried row by row, so one bad delivery
cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from sync_platform.inbox.store import Delivery, Inbox

MAX_BATCH = 256


class InboxWriter:
    """Group commit in front of an `Inbox`, for one event loop (one receiver process).

    `await store(delivery)` returns once the delivery's transaction has committed. At most
    `max_inflight` transactions run at once (each in a worker thread on its own pooled
    connection); deliveries arriving meanwhile queue for the next, up to `max_batch` each.
    """

    def __init__(
        self, inbox: Inbox, *, max_batch: int = MAX_BATCH, max_inflight: int | None = None
    ):
        self.inbox = inbox
        self.max_batch = max_batch
        self.max_inflight = max_inflight or (1 if inbox.dialect == "sqlite" else 2)
        self._pending: list[tuple[Delivery, asyncio.Future[int | None]]] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, delivery: Delivery) -> int | None:
        """The new inbox id, or None for a duplicate; raises what kept the delivery out."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                deliveries = [delivery for delivery, _ in batch]
                try:
                    results = await run_in_threadpool(self.inbox.store_batch, deliveries)
                except BaseException as exc:  # even a cancelled drain answers its waiters
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(
                                exc if isinstance(exc, Exception) else RuntimeError("stopped")
                            )
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._inflight -= 1
