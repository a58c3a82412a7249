"""The sweeper: pending payments whose job was lost are queued again, failed ones retried."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Task, shared_task
from sqlalchemy.orm import Session, sessionmaker

from db.repositories import payments
from db.session import unit_of_work
from workers.app import SWEEP_PENDING_TASK
from workers.enqueue import Publisher
from workers.runtime import runtime_for

logger = logging.getLogger(__name__)

SWEEP_BATCH = 5000
# Failed payments are retried automatically this many times in all, this far apart.
MAX_AUTOMATIC_ATTEMPTS = 3
FAILED_RETRY_AFTER = timedelta(minutes=10)


def requeue_stale_pending(
    sessions: sessionmaker[Session], publisher: Publisher, *, older_than: timedelta
) -> int:
    """Queue again every payment pending for longer than `older_than`; returns how many.

    While the attribution queue still holds messages, pending payments are most
    likely waiting in it: queueing them again would only multiply a backlog, so
    the sweep waits until the queue has drained.
    """
    depth = publisher.queue_depth()
    if depth:
        logger.info("sweeper: %d job(s) still queued; pending payments left to them", depth)
        return 0
    total = 0
    while True:
        with unit_of_work(sessions) as session:
            ids = payments.claim_stale_pending(session, older_than=older_than, limit=SWEEP_BATCH)
        if not ids:
            break
        total += len(ids)
        if not publisher.attribute(ids):
            break  # broker down: these are marked queued now and come back next interval
        if len(ids) < SWEEP_BATCH:
            break
    if total:
        logger.info("sweeper re-queued %d pending payment(s)", total)
    return total


def requeue_due_failed(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    older_than: timedelta = FAILED_RETRY_AFTER,
    max_attempts: int = MAX_AUTOMATIC_ATTEMPTS,
) -> int:
    """Give failed payments a few more tries, spaced out; after that they wait for a replay."""
    with unit_of_work(sessions) as session:
        ids = payments.claim_failed_due(
            session, older_than=older_than, max_attempts=max_attempts, limit=SWEEP_BATCH
        )
    if ids:
        publisher.attribute(ids)
        logger.info("sweeper retried %d failed payment(s)", len(ids))
    return len(ids)


@shared_task(name=SWEEP_PENDING_TASK, bind=True, ignore_result=True)
def sweep_pending(self: Task) -> int:  # type: ignore[type-arg]
    runtime = runtime_for(self.app)
    requeued = requeue_stale_pending(
        runtime.sessions,
        runtime.publisher,
        older_than=timedelta(seconds=runtime.settings.pending_requeue_seconds),
    )
    return requeued + requeue_due_failed(runtime.sessions, runtime.publisher)
