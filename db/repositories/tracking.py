"""Visitors, sessions and identities: batch upserts for the collector."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import Identity, Visitor, VisitSession

SessionKey = tuple[uuid.UUID, uuid.UUID]  # (website_id, session_id)

ACQUISITION_FIELDS = (
    "landing_url",
    "landing_path",
    "referrer",
    "source",
    "medium",
    "campaign",
    "term",
    "content",
    "click_id",
    "channel",
)


@dataclass(frozen=True)
class SessionActivity:
    """What one batch saw of a session; `acquisition` is used only if the session is new."""

    website_id: uuid.UUID
    session_id: uuid.UUID
    visitor_id: uuid.UUID
    first_seen_at: datetime
    last_seen_at: datetime
    pageviews: int
    events: int
    acquisition: dict[str, Any]


def _dialect(session: Session) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


# The upserts are built once per dialect and run as executemany, so SQLAlchemy
# compiles them once and the driver pipelines the rows.


def _greatest_of(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


@cache
def _visitor_upsert(dialect: str) -> Any:
    table = Visitor.__table__
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.website_id, table.c.id],
        set_={
            "last_seen_at": _greatest_of(
                dialect, table.c.last_seen_at, statement.excluded.last_seen_at
            )
        },
    )


@cache
def _session_upsert(dialect: str) -> Any:
    table = VisitSession.__table__
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table)
    excluded = statement.excluded
    # The first event fixed the acquisition: a conflict only extends the session.
    return statement.on_conflict_do_update(
        index_elements=[table.c.website_id, table.c.id],
        set_={
            "last_seen_at": _greatest_of(dialect, table.c.last_seen_at, excluded.last_seen_at),
            "pageviews": table.c.pageviews + excluded.pageviews,
            "events": table.c.events + excluded.events,
        },
    )


# PostgreSQL: the same statements with a fixed text for any batch size (psycopg parses
# each once and prepares it on each connection), the rows as one array per column in
# binary (`%b`), taken in array order: the key order the callers sort them in.
_VISITOR_UPSERT_POSTGRESQL = """
INSERT INTO visitors (website_id, id, first_seen_at, last_seen_at)
SELECT r.website_id, r.id, r.first_seen_at, r.last_seen_at
FROM unnest(%b::uuid[], %b::uuid[], %b::timestamptz[], %b::timestamptz[])
    WITH ORDINALITY AS r(website_id, id, first_seen_at, last_seen_at, n)
ORDER BY r.n
ON CONFLICT (website_id, id) DO UPDATE
SET last_seen_at = greatest(visitors.last_seen_at, excluded.last_seen_at)
"""

# Columns and array types of a new session, in the order `upsert_sessions` sends them;
# the acquisition fields follow ACQUISITION_FIELDS, so a new one needs no second list.
_SESSION_ARRAYS = (
    ("website_id", "uuid"),
    ("id", "uuid"),
    ("visitor_id", "uuid"),
    ("started_at", "timestamptz"),
    ("last_seen_at", "timestamptz"),
    ("pageviews", "int"),
    ("events", "int"),
    *((name, "text") for name in ACQUISITION_FIELDS),
)
_SESSION_COLUMNS = ", ".join(name for name, _ in _SESSION_ARRAYS)
# Built once from the constants above (no input reaches the text).
_SESSION_UPSERT_POSTGRESQL = f"""
INSERT INTO sessions ({_SESSION_COLUMNS})
SELECT {", ".join(f"r.{name}" for name, _ in _SESSION_ARRAYS)}
FROM unnest({", ".join(f"%b::{kind}[]" for _, kind in _SESSION_ARRAYS)})
    WITH ORDINALITY AS r({_SESSION_COLUMNS}, n)
ORDER BY r.n
ON CONFLICT (website_id, id) DO UPDATE
SET last_seen_at = greatest(sessions.last_seen_at, excluded.last_seen_at),
    pageviews = sessions.pageviews + excluded.pageviews,
    events = sessions.events + excluded.events
"""  # noqa: S608

_EXISTING_SESSIONS_POSTGRESQL = """
SELECT s.website_id, s.id
FROM unnest(%b::uuid[], %b::uuid[]) AS k(website_id, id)
JOIN sessions AS s ON s.website_id = k.website_id AND s.id = k.id
"""


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def existing_sessions(session: Session, keys: Iterable[SessionKey]) -> set[SessionKey]:
    keys = list(keys)
    if not keys:
        return set()
    if _is_postgresql(session):
        result = session.connection().exec_driver_sql(
            _EXISTING_SESSIONS_POSTGRESQL,
            ([website_id for website_id, _ in keys], [session_id for _, session_id in keys]),
        )
        return {(website_id, session_id) for website_id, session_id in result}
    rows = session.execute(
        select(VisitSession.website_id, VisitSession.id).where(
            tuple_(VisitSession.website_id, VisitSession.id).in_(keys)
        )
    )
    return {(row.website_id, row.id) for row in rows}


def latest_acquisition(
    session: Session, website_id: uuid.UUID, visitor_id: uuid.UUID, before: datetime
) -> dict[str, Any] | None:
    """The acquisition of the visitor's most recent session started before `before`."""
    columns = [getattr(VisitSession, name) for name in ACQUISITION_FIELDS]
    row = session.execute(
        select(*columns)
        .where(
            VisitSession.website_id == website_id,
            VisitSession.visitor_id == visitor_id,
            VisitSession.started_at < before,
        )
        .order_by(VisitSession.started_at.desc(), VisitSession.id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row else None


def upsert_visitors(
    session: Session, seen: Sequence[tuple[uuid.UUID, uuid.UUID, datetime]]
) -> None:
    """(website_id, visitor_id, seen_at) rows: create visitors, move last_seen_at forward."""
    latest: dict[tuple[uuid.UUID, uuid.UUID], tuple[datetime, datetime]] = {}
    for website_id, visitor_id, at in seen:
        first, last = latest.get((website_id, visitor_id), (at, at))
        latest[(website_id, visitor_id)] = (min(first, at), max(last, at))
    if not latest:
        return
    ordered = sorted(latest.items(), key=lambda i: (str(i[0][0]), str(i[0][1])))
    if _is_postgresql(session):
        session.connection().exec_driver_sql(
            _VISITOR_UPSERT_POSTGRESQL,
            (
                [w for (w, _), _ in ordered],
                [v for (_, v), _ in ordered],
                [first for _, (first, _) in ordered],
                [last for _, (_, last) in ordered],
            ),
        )
        return
    rows = [
        {"website_id": w, "id": v, "first_seen_at": first, "last_seen_at": last}
        for (w, v), (first, last) in ordered
    ]
    session.execute(_visitor_upsert(session.get_bind().dialect.name), rows)


def upsert_sessions(session: Session, activity: Sequence[SessionActivity]) -> None:
    """Create new sessions with their acquisition; extend existing ones (counts, last seen)."""
    if not activity:
        return
    ordered = sorted(activity, key=lambda a: (str(a.website_id), str(a.session_id)))
    if _is_postgresql(session):
        params: list[list[Any]] = [
            [a.website_id for a in ordered],
            [a.session_id for a in ordered],
            [a.visitor_id for a in ordered],
            [a.first_seen_at for a in ordered],
            [a.last_seen_at for a in ordered],
            [a.pageviews for a in ordered],
            [a.events for a in ordered],
        ]
        params += [[a.acquisition.get(name) for a in ordered] for name in ACQUISITION_FIELDS]
        session.connection().exec_driver_sql(_SESSION_UPSERT_POSTGRESQL, tuple(params))
        return
    rows = [
        {
            "website_id": a.website_id,
            "id": a.session_id,
            "visitor_id": a.visitor_id,
            "started_at": a.first_seen_at,
            "last_seen_at": a.last_seen_at,
            "pageviews": a.pageviews,
            "events": a.events,
            **{name: a.acquisition.get(name) for name in ACQUISITION_FIELDS},
        }
        for a in ordered
    ]
    session.execute(_session_upsert(session.get_bind().dialect.name), rows)


def link_identity(
    session: Session,
    *,
    website_id: uuid.UUID,
    kind: str,
    value_hash: str,
    visitor_id: uuid.UUID,
    properties: dict[str, Any],
    now: datetime,
) -> None:
    table = Identity.__table__
    statement = (
        _dialect(session)
        .insert(table)
        .values(
            website_id=website_id,
            kind=kind,
            value_hash=value_hash,
            visitor_id=visitor_id,
            properties=properties,
            first_seen_at=now,
            last_seen_at=now,
        )
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.website_id, table.c.kind, table.c.value_hash, table.c.visitor_id],
        set_={
            "last_seen_at": statement.excluded.last_seen_at,
            "properties": statement.excluded.properties,
        },
    )
    session.execute(statement)


def get_session(
    session: Session, website_id: uuid.UUID, session_id: uuid.UUID
) -> VisitSession | None:
    return session.get(VisitSession, (website_id, session_id))


def sessions_of_visitor(
    session: Session, website_id: uuid.UUID, visitor_id: uuid.UUID
) -> Sequence[VisitSession]:
    return session.scalars(
        select(VisitSession)
        .where(VisitSession.website_id == website_id, VisitSession.visitor_id == visitor_id)
        .order_by(VisitSession.started_at)
    ).all()


def visitors_of_identity(
    session: Session, website_id: uuid.UUID, kind: str, value_hash: str
) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(Identity.visitor_id).where(
                Identity.website_id == website_id,
                Identity.kind == kind,
                Identity.value_hash == value_hash,
            )
        )
    )
