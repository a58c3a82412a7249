"""Visitor counts through linked sessions equal counts of distinct visitors, at every
stage of linking: nothing linked, some linked, sessions arriving out of order, all linked."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Visitor, VisitSession, Website
from db.repositories import reports, visit_links
from db.repositories.reports import ReportQuery
from db.session import unit_of_work
from tests.conftest import Builders

ZONE = "Asia/Kolkata"  # +05:30 all year: SQLite's fixed offset and PostgreSQL agree
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
SOURCES = ["google", "newsletter", None]
CAMPAIGNS = ["spring", "launch", None]
PATHS = ["/", "/pricing"]
GROUPINGS = ["source", "medium", "campaign", "channel", "landing_page", "day"]
FILTERS = [{}, {"source": "google"}, {"campaign": "spring"}, {"source": None, "campaign": None}]


@dataclass(frozen=True)
class Visit:
    visitor: uuid.UUID
    started_at: datetime
    source: str | None
    campaign: str | None
    landing_path: str
    medium: str | None
    channel: str | None


def make_visits(rng: random.Random, count: int) -> list[Visit]:
    visitors = [uuid.uuid4() for _ in range(8)]
    times = [EPOCH + timedelta(minutes=rng.randrange(0, 20 * 24 * 60, 37)) for _ in range(count)]
    visits = []
    for started_at in times:
        source = rng.choice(SOURCES)
        visits.append(
            Visit(
                visitor=rng.choice(visitors),
                # Same minute grid for everyone: ties between one visitor's sessions happen.
                started_at=started_at,
                source=source,
                campaign=rng.choice(CAMPAIGNS),
                landing_path=rng.choice(PATHS),
                medium=None if source is None else ("email" if source == "newsletter" else "cpc"),
                channel=None if source is None else source.title(),
            )
        )
    return visits


def store(sessions: sessionmaker[Session], site: Website, visits: list[Visit]) -> None:
    with unit_of_work(sessions) as session:
        known = set(session.scalars(select(Visitor.id).where(Visitor.website_id == site.id)).all())
        for v in visits:
            if v.visitor not in known:
                known.add(v.visitor)
                session.add(
                    Visitor(
                        website_id=site.id,
                        id=v.visitor,
                        first_seen_at=v.started_at,
                        last_seen_at=v.started_at,
                    )
                )
            session.add(
                VisitSession(
                    website_id=site.id,
                    id=uuid.uuid4(),
                    visitor_id=v.visitor,
                    started_at=v.started_at,
                    last_seen_at=v.started_at,
                    pageviews=1,
                    source=v.source,
                    medium=v.medium,
                    campaign=v.campaign,
                    channel=v.channel,
                    landing_path=v.landing_path,
                )
            )


def key_of(visit: Visit, group_by: str) -> str | None:
    if group_by == "day":
        return visit.started_at.astimezone(ZoneInfo(ZONE)).date().isoformat()
    field = "landing_path" if group_by == "landing_page" else group_by
    value: str | None = getattr(visit, field)
    return value


def expected(
    visits: list[Visit], query: ReportQuery, filters: dict[str, str | None]
) -> tuple[dict[str | None, int], int]:
    chosen = [
        v
        for v in visits
        if query.start <= v.started_at < query.end
        and all(getattr(v, name) == value for name, value in filters.items() if value)
    ]
    per_key: dict[str | None, set[uuid.UUID]] = defaultdict(set)
    for v in chosen:
        per_key[key_of(v, query.group_by)].add(v.visitor)
    return {k: len(s) for k, s in per_key.items()}, len({v.visitor for v in chosen})


def queries(
    site: Website, rng: random.Random
) -> Iterator[tuple[ReportQuery, dict[str, str | None]]]:
    zone = ZoneInfo(ZONE)
    for group_by in GROUPINGS:
        for filters in FILTERS:
            first = (EPOCH + timedelta(days=rng.randrange(0, 12))).astimezone(zone).date()
            last = first + timedelta(days=rng.randrange(0, 9))
            start = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
            end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
            yield (
                ReportQuery(
                    website_id=site.id,
                    start=start,
                    end=end.astimezone(UTC),
                    group_by=group_by,
                    timezone=ZONE,
                    utc_offset_minutes=330,
                    source=filters.get("source"),
                    campaign=filters.get("campaign"),
                ),
                filters,
            )


def check_counts(
    sessions: sessionmaker[Session], site: Website, visits: list[Visit], rng: random.Random
) -> int:
    checked = 0
    for query, filters in queries(site, rng):
        want_by_key, want_total = expected(visits, query, filters)
        with unit_of_work(sessions) as session:
            got_by_key, got_total = reports.visitors(session, query)
        got_by_key = {k: n for k, n in got_by_key.items() if n}
        assert got_by_key == want_by_key, (query.group_by, filters, query.start, query.end)
        assert got_total == want_total, (query.group_by, filters, query.start, query.end)
        checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_are_exact_before_during_and_after_linking(
    sessions: sessionmaker[Session], build: Builders, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    site = build.website()
    visits = make_visits(rng, 90)
    # Three arrivals in shuffled time order: later ones hold sessions that started
    # before sessions already linked.
    rng.shuffle(visits)
    arrivals = [visits[:40], visits[40:70], visits[70:]]

    stored: list[Visit] = []
    for index, arrival in enumerate(arrivals):
        store(sessions, site, arrival)
        stored += arrival
        assert check_counts(sessions, site, stored, rng) == len(GROUPINGS) * len(FILTERS)
        if index < 2:  # the last arrival stays unlinked
            # Other tests' sessions may be waiting too: the linker takes them all.
            totals = visit_links.link_waiting(sessions, limit=7)
            assert totals.done
            assert totals.linked >= len(arrival)
            assert all(linked for linked, *_ in previous_times(sessions, site).values())
            assert check_counts(sessions, site, stored, rng)

    # The slow exact path (used when the linker is far behind) agrees.
    monkeypatch.setattr(reports, "MAX_UNLINKED", -1)
    assert check_counts(sessions, site, stored, rng)


def test_linking_sets_previous_times_and_corrects_late_arrivals(
    sessions: sessionmaker[Session], build: Builders
) -> None:
    site = build.website()
    visitor = uuid.uuid4()
    at = {h: EPOCH + timedelta(hours=h) for h in (0, 5, 10, 20)}
    visit_links.link_waiting(sessions)  # other tests' sessions: counts below are this test's

    def visit(hours: int, source: str | None, campaign: str | None = None) -> Visit:
        return Visit(visitor, at[hours], source, campaign, "/", None, None)

    store(
        sessions, site, [visit(0, "google", "spring"), visit(10, "newsletter"), visit(20, "google")]
    )
    first = visit_links.link_waiting(sessions)
    assert (first.linked, first.corrected, first.done) == (3, 0, True)
    # started at: (linked, previous any, previous same source, previous same campaign)
    assert previous_times(sessions, site) == {
        at[0]: (True, None, None, None),
        at[10]: (True, at[0], None, None),
        at[20]: (True, at[10], at[0], at[10]),  # campaign None: the 10 h session's
    }

    # A session that started before two linked ones arrives late: both are corrected.
    store(sessions, site, [visit(5, "google")])
    late = visit_links.link_waiting(sessions)
    assert (late.linked, late.corrected, late.done) == (1, 2, True)
    assert previous_times(sessions, site) == {
        at[0]: (True, None, None, None),
        at[5]: (True, at[0], at[0], None),
        at[10]: (True, at[5], None, at[5]),
        at[20]: (True, at[10], at[5], at[10]),
    }

    # Nothing waits now: another run changes nothing.
    again = visit_links.link_waiting(sessions)
    assert (again.linked, again.corrected, again.done) == (0, 0, True)


def previous_times(
    sessions: sessionmaker[Session], site: Website
) -> dict[datetime, tuple[bool, datetime | None, datetime | None, datetime | None]]:
    with unit_of_work(sessions) as session:
        rows = session.execute(
            select(
                VisitSession.started_at,
                VisitSession.linked,
                VisitSession.previous_started_at,
                VisitSession.previous_source_started_at,
                VisitSession.previous_campaign_started_at,
            ).where(VisitSession.website_id == site.id)
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def test_waiting_count(sessions: sessionmaker[Session], build: Builders) -> None:
    site = build.website()
    before = _waiting(sessions)
    store(sessions, site, make_visits(random.Random(9), 5))
    assert _waiting(sessions) == before + 5
    visit_links.link_waiting(sessions)
    assert _waiting(sessions) == 0


def _waiting(sessions: sessionmaker[Session]) -> int:
    with unit_of_work(sessions) as session:
        return visit_links.waiting_sessions(session)
