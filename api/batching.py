"""Group commit: concurrent requests share one transaction.

Requests hand their item to a `GroupCommitter` and await its result. While a
transaction is in flight, new items queue up; the next transaction takes all
of them (up to `max_size`). At low load a batch is one item and nobody waits;
at high load one commit serves hundreds of requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

In = TypeVar("In")
Out = TypeVar("Out")

logger = logging.getLogger(__name__)


class GroupCommitter(Generic[In, Out]):
    def __init__(
        self,
        process: Callable[[Sequence[In]], Sequence[Out]],
        *,
        max_size: int = 200,
        window_seconds: float = 0.0,
        concurrency: int = 2,
        name: str = "batch",
    ) -> None:
        """`process` runs in a thread, gets a batch, returns one result per item, in order.

        If it raises, every item of the batch fails with that exception.
        """
        self._process = process
        self._max_size = max_size
        self._window = window_seconds
        self._name = name
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._wakeup: asyncio.Event | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: In) -> Out:
        if self._closed:
            raise RuntimeError(f"{self._name} committer is closed")
        loop = asyncio.get_running_loop()
        if self._runner is None:
            self._wakeup = asyncio.Event()
            self._runner = loop.create_task(self._run())
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            await self._slots.acquire()
            if self._window and len(self._pending) < self._max_size:
                await asyncio.sleep(self._window)
            batch = self._pending[: self._max_size]
            del self._pending[: self._max_size]
            if not self._pending:
                self._wakeup.clear()
            if not batch:
                self._slots.release()
                if self._closed:
                    return
                continue
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _commit(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await run_in_threadpool(self._process, [item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Finish every queued and in-flight batch, then stop."""
        self._closed = True
        while self._pending or self._in_flight:
            if self._wakeup is not None:
                self._wakeup.set()
            await asyncio.sleep(0.01)
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None
