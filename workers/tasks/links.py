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


class _QuietRoutineRuns(logging.Filter):
    """Drops Celery's INFO lines about this task (sent, received, succeeded every 5 s);
    its own lines, warnings and errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        args = record.args
        names = args.values() if isinstance(args, dict) else args or ()
        return LINK_SESSIONS_TASK not in names


for _name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(_QuietRoutineRuns())


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
