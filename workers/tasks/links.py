"""Links new sessions to their visitor's previous ones, for fast visitor counts."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from db.repositories.visit_links import link_waiting
from workers.app import LINK_SESSIONS_TASK
from workers.runtime import runtime_for

logger = logging.getLogger(__name__)

# One run stops after this long; the next scheduled run goes on.
BUDGET_SECONDS = 20.0


@shared_task(name=LINK_SESSIONS_TASK, bind=True, ignore_result=True)
def link_sessions(self: Task) -> int:  # type: ignore[type-arg]
    totals = link_waiting(runtime_for(self.app).sessions, budget_seconds=BUDGET_SECONDS)
    if totals.corrected:
        logger.info(
            "linker: %d session(s) relinked after an earlier one arrived late", totals.corrected
        )
    if not totals.done:
        logger.info("linker: %d session(s) linked, more waiting", totals.linked)
    return totals.linked
