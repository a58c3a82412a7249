"""The linker: each session learns when its visitor's previous session started.

A visitor is in a date range's visitor count once, through their first session in the
range: the session whose previous one (of the same visitor, and for a per-source count
with the same source) started before the range, or never. With that time stored on
every session, a report counts the sessions that qualify, a filtered count over the
report index, instead of a DISTINCT over every (key, visitor) of the range, which is
what made a 30-day report slow on a large website.

The collector does not wait for this: new sessions are written unlinked and a periodic
maintenance task links them seconds later (`link_sessions`). Reports count unlinked
sessions the slow exact way, so their numbers never depend on the linker being on time.
A session that arrives out of order (started before a session already linked) is
linked again with the rest of its visitor's sessions, which corrects their times.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import VisitSession
from db.models.tracking import PREVIOUS_COLUMNS
from db.session import in_transaction

# The acquisition fields a report can count visitors by (None: any session).
FIELDS: tuple[str | None, ...] = tuple(PREVIOUS_COLUMNS)
# One transaction looks at the sessions of at most this many visitors at a time.
VISITORS_PER_QUERY = 500
# PostgreSQL: one linker at a time (a run that finds the lock taken does nothing).
ADVISORY_LOCK_KEY = 0x6D657472_6C6E6B  # "metr" "lnk"


@dataclass(frozen=True)
class LinkRun:
    linked: int  # sessions that were waiting and are now linked
    corrected: int  # linked sessions whose times changed (an earlier session arrived late)
    more: bool  # more sessions are waiting than this run took


def link_sessions(session: Session, *, limit: int = 5000, wait: bool = False) -> LinkRun:
    """Link up to `limit` waiting sessions, newest first (after the upgrade that added
    the linker, recent date ranges become fast first), in the caller's transaction
    (every session of their visitors is looked at again).

    On PostgreSQL one linker runs at a time: with `wait`, this one waits for the other
    to commit; without, it does nothing (SQLite's writers take turns anyway).
    """
    if session.get_bind().dialect.name == "postgresql":
        if wait:
            session.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        elif not session.scalar(select(func.pg_try_advisory_xact_lock(ADVISORY_LOCK_KEY))):
            return LinkRun(0, 0, True)
    waiting = session.execute(
        select(VisitSession.website_id, VisitSession.visitor_id)
        .where(~VisitSession.linked)
        .order_by(VisitSession.started_at.desc())
        .limit(limit)
    ).all()
    by_website: dict[uuid.UUID, set[uuid.UUID]] = {}
    for website_id, visitor_id in waiting:
        by_website.setdefault(website_id, set()).add(visitor_id)
    chunks = [
        (website_id, visitors[start : start + VISITORS_PER_QUERY])
        for website_id, unsorted in by_website.items()
        for visitors in [sorted(unsorted)]
        for start in range(0, len(visitors), VISITORS_PER_QUERY)
    ]
    updates: list[dict[str, Any]] = []
    linked = corrected = 0
    for website_id, chunk in chunks:
        for row, times in _relinked(_sessions_of(session, website_id, chunk)):
            if not row.linked:
                linked += 1
            elif times != tuple(getattr(row, PREVIOUS_COLUMNS[f]) for f in FIELDS):
                corrected += 1
            else:
                continue
            updates.append(
                {"w": row.website_id, "i": row.id, **{f"p{n}": t for n, t in enumerate(times)}}
            )
    # In the collector's lock order, so the two never wait on each other in a cycle.
    updates.sort(key=lambda u: (str(u["w"]), str(u["i"])))
    if updates:
        session.execute(_update_statement(), updates)
    return LinkRun(linked, corrected, len(waiting) == limit)


@dataclass
class LinkTotals:
    linked: int = 0
    corrected: int = 0
    done: bool = False  # nothing was waiting when it stopped


def link_waiting(
    sessions: sessionmaker[Session],
    *,
    limit: int = 5000,
    budget_seconds: float | None = None,
    wait: bool = False,
    progress: Callable[[LinkTotals], None] | None = None,
) -> LinkTotals:
    """Link waiting sessions in transactions of `limit`, until none wait or the time
    budget is spent (the next run goes on from there). Without `wait`, it stops when
    another linker is running."""
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    totals = LinkTotals()
    while True:
        run = in_transaction(
            sessions, lambda session: link_sessions(session, limit=limit, wait=wait)
        )
        totals.linked += run.linked
        totals.corrected += run.corrected
        if progress is not None:
            progress(totals)
        if not run.more:
            totals.done = True
            return totals
        if run.linked == 0 or (deadline is not None and time.monotonic() > deadline):
            return totals  # another linker holds the lock, or out of time


def _sessions_of(session: Session, website_id: uuid.UUID, visitors: Sequence[uuid.UUID]) -> Any:
    columns = [getattr(VisitSession, PREVIOUS_COLUMNS[f]) for f in FIELDS]
    fields = [getattr(VisitSession, f) for f in FIELDS if f is not None]
    return session.execute(
        select(
            VisitSession.website_id,
            VisitSession.id,
            VisitSession.visitor_id,
            VisitSession.started_at,
            VisitSession.linked,
            *fields,
            *columns,
        )
        .where(VisitSession.website_id == website_id, VisitSession.visitor_id.in_(visitors))
        .order_by(
            VisitSession.visitor_id,
            VisitSession.started_at,
            VisitSession.id,
        )
    )


def _relinked(rows: Iterable[Any]) -> Iterable[tuple[Any, tuple[datetime | None, ...]]]:
    """Each session with its previous-session times, from one visitor's sessions in order."""
    visitor: tuple[uuid.UUID, uuid.UUID] | None = None
    latest: dict[tuple[str | None, Any], datetime] = {}
    for row in rows:
        if (row.website_id, row.visitor_id) != visitor:
            visitor = (row.website_id, row.visitor_id)
            latest = {}
        keys = [(f, None if f is None else getattr(row, f)) for f in FIELDS]
        yield row, tuple(latest.get(key) for key in keys)
        for key in keys:
            latest[key] = row.started_at


@cache
def _update_statement() -> Any:
    table: Table = VisitSession.__table__  # type: ignore[assignment]
    return (
        update(table)
        .where(table.c.website_id == bindparam("w"), table.c.id == bindparam("i"))
        .values(
            linked=True,
            **{PREVIOUS_COLUMNS[f]: bindparam(f"p{n}") for n, f in enumerate(FIELDS)},
        )
    )


def waiting_sessions(session: Session) -> int:
    """How many sessions wait for the linker."""
    return session.scalar(select(func.count()).where(~VisitSession.linked)) or 0
