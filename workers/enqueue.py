"""Sending work to the workers. Call these only after the transaction committed."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from celery import Celery

from workers.app import ATTRIBUTE_TASK, ATTRIBUTION_QUEUE

logger = logging.getLogger(__name__)

# One message carries up to this many payment ids.
MAX_IDS_PER_MESSAGE = 500


class Publisher:
    """Publishes attribution jobs; a failure is logged, never raised (the sweeper retries)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def attribute(self, payment_ids: Iterable[uuid.UUID]) -> bool:
        """Queue attribution of these payments; True if every message was sent."""
        ids = [str(pid) for pid in payment_ids]
        ok = True
        for chunk in _chunks(ids, MAX_IDS_PER_MESSAGE):
            try:
                self.app.send_task(ATTRIBUTE_TASK, args=[chunk], queue=ATTRIBUTION_QUEUE)
            except Exception as exc:  # the broker is down or unreachable
                ok = False
                logger.warning(
                    "could not queue attribution of %d payment(s); the sweeper will retry: %s",
                    len(chunk),
                    type(exc).__name__,
                )
        return ok

    def queue_depth(self) -> int | None:
        """Messages waiting in the attribution queue, or None if the broker cannot say."""
        try:
            with self.app.connection_for_read() as connection, connection.channel() as channel:
                declared = cast(Any, channel).queue_declare(ATTRIBUTION_QUEUE, passive=True)
                return int(declared.message_count)
        except Exception:
            return None

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class BackgroundPublisher:
    """Queues attribution jobs from a hot path without waiting on the broker.

    Ids handed to `submit` are sent by one background thread, many per message:
    once the first id of a batch has arrived, the thread waits up to `window_seconds`
    for more (or until `max_ids` are waiting), then sends them all. A message costs a
    worker a few ms whatever it carries, so fewer, fuller messages make attribution
    cheaper; the caller never waits for the window. `flush` and `close` send what is
    waiting at once. If the process dies before the ids are sent, the rows are still
    pending and the sweeper queues them again.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        window_seconds: float = 0.0,
        max_ids: int = MAX_IDS_PER_MESSAGE,
    ) -> None:
        self._publisher = publisher
        self._window = window_seconds
        self._max_ids = max_ids
        self._ids: list[uuid.UUID] = []
        self._first_at = 0.0  # when the first id waiting arrived
        self._condition = threading.Condition()
        self._busy = False
        self._flushing = 0  # callers of flush() waiting: no window until they are served
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="metrivo-publisher", daemon=True)
        self._thread.start()

    def submit(self, payment_ids: Iterable[uuid.UUID]) -> None:
        with self._condition:
            starts_batch = not self._ids
            self._ids.extend(payment_ids)
            if not self._ids:
                return
            if starts_batch:
                self._first_at = time.monotonic()
            # Wake the sender for a new batch or a full one, not for every id in between.
            if starts_batch or len(self._ids) >= self._max_ids:
                self._condition.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is waiting now, and wait until everything submitted so far is sent."""
        deadline = time.monotonic() + timeout
        with self._condition:
            self._flushing += 1
            self._condition.notify_all()
            try:
                while self._ids or self._busy:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._condition.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._ids and not self._closed:
                    self._condition.wait()
                if self._closed and not self._ids:
                    return
                self._wait_for_more()
                batch, self._ids = self._ids, []
                self._busy = True
            try:
                self._publisher.attribute(batch)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _wait_for_more(self) -> None:
        """Hold the batch open until the window since its first id ends (lock held)."""
        deadline = self._first_at + self._window
        while len(self._ids) < self._max_ids and not self._flushing and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._condition.wait(remaining)
