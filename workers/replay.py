"""Replay: put payments back in the attribution queue, in pages, safely.

A replayed payment keeps its current result until the worker writes a new one,
and the worker's guarded write means a replay racing another job is harmless:
replaying everything after a rules change is safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from db.repositories import payments
from db.session import unit_of_work
from workers.enqueue import Publisher

PAGE_SIZE = 1000


@dataclass(frozen=True)
class ReplayFilter:
    status: str = "failed"
    website_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class ReplayResult:
    matched: int = 0
    queued: int = 0
    unpublished: int = 0  # marked pending but not sent: the sweeper sends them later


def replay(
    sessions: sessionmaker[Session],
    publisher: Publisher | None,
    selection: ReplayFilter,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Re-queue every payment matching `selection`; `progress` gets the running count."""
    result = ReplayResult()
    after: uuid.UUID | None = None
    while True:
        with unit_of_work(sessions) as session:
            ids = payments.replay_candidates(
                session,
                status=selection.status,
                website_id=selection.website_id,
                since=selection.since,
                until=selection.until,
                after=after,
                limit=PAGE_SIZE,
            )
            if ids and not dry_run:
                payments.mark_for_reattribution(session, ids)
        if not ids:
            break
        after = ids[-1]
        result.matched += len(ids)
        if not dry_run and publisher is not None:
            if publisher.attribute(ids):
                result.queued += len(ids)
            else:
                result.unpublished += len(ids)
        if progress is not None:
            progress(result.matched)
        if len(ids) < PAGE_SIZE:
            break
    return result
