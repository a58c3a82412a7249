"""The pending sweeper: payments whose job was never queued (or lost) are queued again."""

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


def requeue_stale_pending(
    sessions: sessionmaker[Session], publisher: Publisher, *, older_than: timedelta
) -> int:
    """Queue again every payment pending for longer than `older_than`; returns how many."""
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


@shared_task(name=SWEEP_PENDING_TASK, bind=True, ignore_result=True)
def sweep_pending(self: Task) -> int:  # type: ignore[type-arg]
    runtime = runtime_for(self.app)
    return requeue_stale_pending(
        runtime.sessions,
        runtime.publisher,
        older_than=timedelta(seconds=runtime.settings.pending_requeue_seconds),
    )
