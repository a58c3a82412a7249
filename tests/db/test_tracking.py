"""The collector's batch upserts of visitors and sessions, on the backend under test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.models import Visitor, VisitSession, Website
from db.repositories import tracking
from db.repositories.tracking import ACQUISITION_FIELDS, SessionActivity
from db.session import unit_of_work

T0 = datetime(2026, 5, 17, 10, 0, tzinfo=UTC)
ACQUISITION = {
    "landing_url": "https://shop.example.com/?utm_source=news",
    "landing_path": "/",
    "referrer": None,
    "source": "news",
    "medium": "email",
    "campaign": 'spring "sale"',
    "term": None,
    "content": None,
    "click_id": None,
    "channel": "Email",
}


def activity(
    site: Website, session_id: uuid.UUID, visitor_id: uuid.UUID, at: datetime, **acquisition: str
) -> SessionActivity:
    return SessionActivity(
        website_id=site.id,
        session_id=session_id,
        visitor_id=visitor_id,
        first_seen_at=at,
        last_seen_at=at + timedelta(seconds=30),
        pageviews=2,
        events=1,
        acquisition={**ACQUISITION, **acquisition},
    )


def test_sessions_are_created_then_extended(sessions: sessionmaker[Session], site: Website) -> None:
    visitor = uuid.uuid4()
    first, second = uuid.uuid4(), uuid.uuid4()
    with unit_of_work(sessions) as session:
        assert tracking.existing_sessions(session, [(site.id, first)]) == set()
        tracking.upsert_sessions(
            session, [activity(site, first, visitor, T0), activity(site, second, visitor, T0)]
        )
    with unit_of_work(sessions) as session:
        keys = [(site.id, first), (site.id, second), (site.id, uuid.uuid4())]
        assert tracking.existing_sessions(session, keys) == set(keys[:2])
        # Later activity, and older activity arriving late: counts add up, last seen moves
        # forward only, the acquisition stays the first one.
        tracking.upsert_sessions(
            session,
            [
                activity(site, first, visitor, T0 + timedelta(minutes=5), source="other"),
                activity(site, second, visitor, T0 - timedelta(minutes=5)),
            ],
        )
    with unit_of_work(sessions) as session:
        one = session.get_one(VisitSession, (site.id, first))
        two = session.get_one(VisitSession, (site.id, second))
    assert (one.pageviews, one.events) == (4, 2)
    assert one.started_at == T0
    assert one.last_seen_at == T0 + timedelta(minutes=5, seconds=30)
    assert two.last_seen_at == T0 + timedelta(seconds=30)
    assert {name: getattr(one, name) for name in ACQUISITION_FIELDS} == ACQUISITION


def test_visitors_keep_their_first_and_latest_visit(
    sessions: sessionmaker[Session], site: Website
) -> None:
    visitor, other = uuid.uuid4(), uuid.uuid4()
    with unit_of_work(sessions) as session:
        tracking.upsert_visitors(
            session,
            [
                (site.id, visitor, T0 + timedelta(minutes=1)),
                (site.id, visitor, T0),
                (site.id, other, T0),
            ],
        )
    with unit_of_work(sessions) as session:
        tracking.upsert_visitors(
            session,
            [(site.id, visitor, T0 + timedelta(minutes=10)), (site.id, other, T0 - timedelta(1))],
        )
    with unit_of_work(sessions) as session:
        seen = session.get_one(Visitor, (site.id, visitor))
        again = session.get_one(Visitor, (site.id, other))
    assert (seen.first_seen_at, seen.last_seen_at) == (T0, T0 + timedelta(minutes=10))
    assert (again.first_seen_at, again.last_seen_at) == (T0, T0)
