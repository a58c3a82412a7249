"""Revenue reports: grouped sums that stay exact (amounts are summed as decimals)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from db.models import Payment, VisitSession
from db.models.tracking import PREVIOUS_COLUMNS

GROUPS = ("source", "medium", "campaign", "channel", "landing_page", "confidence", "day")
# Statuses that mean money was received; a refund is received money given back.
RECEIVED = ("paid", "partially_refunded", "disputed", "refunded")
KEPT = ("paid", "partially_refunded", "disputed")

_PAYMENT_KEYS: dict[str, Any] = {
    "source": Payment.attributed_source,
    "medium": Payment.attributed_medium,
    "campaign": Payment.attributed_campaign,
    "channel": Payment.attributed_channel,
    "landing_page": Payment.attributed_landing_page,
    "confidence": Payment.attribution_confidence,
}
_SESSION_KEYS: dict[str, Any] = {
    "source": VisitSession.source,
    "medium": VisitSession.medium,
    "campaign": VisitSession.campaign,
    "channel": VisitSession.channel,
    "landing_page": VisitSession.landing_path,
}


@dataclass(frozen=True)
class ReportQuery:
    website_id: uuid.UUID
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    group_by: str
    timezone: str = "UTC"
    utc_offset_minutes: int = 0  # SQLite has no time zones: the offset at `start` is used
    source: str | None = None
    campaign: str | None = None
    confidence: str | None = None


@dataclass
class Group:
    key: str | None
    unattributed: bool
    gross: dict[str, Decimal] = field(default_factory=dict)
    refunded: dict[str, Decimal] = field(default_factory=dict)
    payments: int = 0
    refunds: int = 0
    paying_visitors: int = 0
    visitors: int | None = None


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _day(session: Session, column: Any, query: ReportQuery) -> ColumnElement[Any]:
    """The local date (a `date` on PostgreSQL, 'YYYY-MM-DD' text on SQLite: see `_key`)."""
    if _is_postgres(session):
        return func.date(func.timezone(query.timezone, column))
    return func.date(column, f"{query.utc_offset_minutes:+d} minutes")


def _key(value: Any) -> str | None:
    """Group keys as the API shows them: days as ISO dates."""
    return value.isoformat() if isinstance(value, date) else value


def _payment_key(session: Session, query: ReportQuery) -> ColumnElement[Any]:
    if query.group_by == "day":
        return _day(session, Payment.paid_at, query)
    key: ColumnElement[Any] = _PAYMENT_KEYS[query.group_by]
    return key


def _payment_filters(query: ReportQuery) -> list[ColumnElement[bool]]:
    filters = [
        Payment.website_id == query.website_id,
        Payment.paid_at >= query.start,
        Payment.paid_at < query.end,
    ]
    if query.source is not None:
        filters.append(Payment.attributed_source == query.source)
    if query.campaign is not None:
        filters.append(Payment.attributed_campaign == query.campaign)
    if query.confidence is not None:
        filters.append(Payment.attribution_confidence == query.confidence)
    return filters


def _unattributed() -> ColumnElement[bool]:
    return Payment.attributed_source.is_(None)


AmountRow = tuple[str | None, bool, str, str, Decimal, int]


def _tune(session: Session) -> None:
    # Distinct-visitor counts hash a few hundred thousand rows: keep them in memory.
    if _is_postgres(session):
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def _split_for(query: ReportQuery) -> ColumnElement[bool]:
    split = literal(False) if query.group_by in ("day", "confidence") else _unattributed()
    return split.label("unattributed")


def payment_amounts(session: Session, query: ReportQuery) -> list[AmountRow]:
    """(key, unattributed, currency, status, amount, count) of received payments.

    Summed per distinct amount and multiplied out as decimals later: exact on every backend.
    """
    key = _payment_key(session, query).label("key")
    split = _split_for(query)
    rows = session.execute(
        select(key, split, Payment.currency, Payment.status, Payment.amount, func.count())
        .where(*_payment_filters(query), Payment.status.in_(RECEIVED))
        .group_by(key, split, Payment.currency, Payment.status, Payment.amount)
    )
    return [(_key(k), bool(u), c, st, Decimal(a), n) for k, u, c, st, a, n in rows]


def paying_visitors(
    session: Session, query: ReportQuery
) -> tuple[dict[tuple[str | None, bool], int], int]:
    """Distinct visitors that kept (not refunded) payments were matched to: per group, in all.

    Payments matched to no visitor are not counted, so conversion compares visitors with
    visitors.
    """
    key = _payment_key(session, query).label("key")
    split = _split_for(query)
    kept = [*_payment_filters(query), Payment.status.in_(KEPT)]
    per_group = session.execute(
        select(key, split, func.count(distinct(Payment.matched_visitor_id)))
        .where(*kept)
        .group_by(key, split)
    )
    found = {(_key(k), bool(u)): n for k, u, n in per_group}
    total = session.scalar(select(func.count(distinct(Payment.matched_visitor_id))).where(*kept))
    return found, total or 0


# Above this many sessions not yet linked in a range, a report counts the slow way.
MAX_UNLINKED = 20_000


def visitors(session: Session, query: ReportQuery) -> tuple[dict[str | None, int], int]:
    """Distinct visitors whose sessions started in the range: per group key, and in all.

    Linked sessions (db/repositories/visit_links.py) are counted where they are their
    visitor's first of the range (or of the day) in the group, and, for the total, where
    they are the first of the range at all: one pass over the range's sessions. The few
    sessions the linker has not reached yet are added when their visitor has no linked
    session there. The exact DISTINCT count over every session stands in when no single
    "previous session" time fits the query (a grouping and a filter on different fields)
    or when the linker is far behind.
    """
    if not linked_counts_apply(session, query):
        return distinct_visitors_by_key(session, query), distinct_visitors(session, query)
    return linked_visitors(session, query)


def linked_visitors(session: Session, query: ReportQuery) -> tuple[dict[str | None, int], int]:
    """`visitors` through linked sessions, once `linked_counts_apply` said they fit."""
    in_group = _previous_column(query, grouped=True)
    overall = _previous_column(query, grouped=False)
    if in_group is None or overall is None:
        raise ValueError("no previous-session time fits this query: use distinct_visitors")
    key = _session_key(session, query, VisitSession).label("key")
    if query.group_by == "day":
        # Counted on the day of their first session that day. Sessions more than a day
        # apart (the common case) skip the time zone arithmetic: no day has 26 hours.
        apart = VisitSession.started_at - in_group > timedelta(hours=26)
        first_in_group = or_(
            in_group.is_(None),
            *([apart] if _is_postgres(session) else []),
            _day(session, in_group, query) != key,
        )
    else:
        first_in_group = or_(in_group.is_(None), in_group < query.start)
    # Each visitor's first session of the range is in exactly one group: their sum is
    # the range's visitors.
    first_overall = or_(overall.is_(None), overall < query.start)
    rows = session.execute(
        select(key, func.count().filter(first_in_group), func.count().filter(first_overall))
        .where(*_session_filters(query), VisitSession.linked.is_(True))
        .group_by(key)
    )
    per_key: dict[str | None, int] = {}
    total = 0
    for k, in_range, first in rows:
        if in_range:
            per_key[_key(k)] = in_range
        total += first
    for k, n in _unlinked_visitors(session, query, grouped=True).items():
        per_key[k] = per_key.get(k, 0) + n
    total += _unlinked_visitors(session, query, grouped=False).get(None, 0)
    return per_key, total


def linked_counts_apply(session: Session, query: ReportQuery) -> bool:
    """Whether `visitors` counts through linked sessions (else with a DISTINCT)."""
    return (
        _previous_column(query, grouped=True) is not None
        and _previous_column(query, grouped=False) is not None
        and _unlinked_in_range(session, query) <= MAX_UNLINKED
    )


def distinct_visitors_by_key(session: Session, query: ReportQuery) -> dict[str | None, int]:
    """Distinct visitors per group key, counted with a DISTINCT over every session."""
    return _distinct_visitors(session, query, grouped=True)


def distinct_visitors(session: Session, query: ReportQuery) -> int:
    """Distinct visitors of the range, counted with a DISTINCT over every session."""
    return _distinct_visitors(session, query, grouped=False).get(None, 0)


def _fields(query: ReportQuery, *, grouped: bool) -> set[str]:
    """The session fields a visitor's sessions must share to count once."""
    fields = set()
    if grouped and query.group_by in _SESSION_KEYS:
        fields.add(_SESSION_KEYS[query.group_by].key)
    if query.source is not None:
        fields.add("source")
    if query.campaign is not None:
        fields.add("campaign")
    return fields


def _previous_column(query: ReportQuery, *, grouped: bool) -> Any:
    fields = _fields(query, grouped=grouped)
    if len(fields) > 1:
        return None
    return getattr(VisitSession, PREVIOUS_COLUMNS[next(iter(fields), None)])


def _session_key(session: Session, query: ReportQuery, entity: Any) -> ColumnElement[Any]:
    if query.group_by == "day":
        return _day(session, entity.started_at, query)
    key: ColumnElement[Any] = getattr(entity, _SESSION_KEYS[query.group_by].key)
    return key


def _unlinked_in_range(session: Session, query: ReportQuery) -> int:
    return (
        session.scalar(
            select(func.count()).where(*_session_filters(query, VisitSession), ~VisitSession.linked)
        )
        or 0
    )


def _unlinked_visitors(
    session: Session, query: ReportQuery, *, grouped: bool
) -> dict[str | None, int]:
    """Visitors of not-yet-linked sessions with no linked session in the same group."""
    waiting = aliased(VisitSession)
    linked = aliased(VisitSession)
    same = [linked.website_id == waiting.website_id, linked.visitor_id == waiting.visitor_id]
    if grouped:
        same.append(
            _session_key(session, query, linked).is_not_distinct_from(
                _session_key(session, query, waiting)
            )
        )
    key = _session_key(session, query, waiting) if grouped else None
    return _count_by(
        session,
        key,
        func.count(distinct(waiting.visitor_id)),
        [
            *_session_filters(query, waiting),
            ~waiting.linked,
            ~exists().where(and_(*same, *_session_filters(query, linked), linked.linked)),
        ],
    )


def _distinct_visitors(
    session: Session, query: ReportQuery, *, grouped: bool
) -> dict[str | None, int]:
    """The exact count over every session of the range: hashes each (key, visitor)."""
    _tune(session)
    if not grouped:
        unique = (
            select(VisitSession.visitor_id)
            .where(*_session_filters(query))
            .group_by(VisitSession.visitor_id)
            .subquery()
        )
        return {None: session.scalar(select(func.count()).select_from(unique)) or 0}
    key = _session_key(session, query, VisitSession).label("key")
    pairs = (
        select(key, VisitSession.visitor_id)
        .where(*_session_filters(query))
        .group_by(key, VisitSession.visitor_id)
        .subquery()
    )
    rows = session.execute(select(pairs.c.key, func.count()).group_by(pairs.c.key))
    return {_key(k): n for k, n in rows}


def _count_by(
    session: Session,
    key: ColumnElement[Any] | None,
    count: ColumnElement[int],
    where: list[ColumnElement[bool]],
) -> dict[str | None, int]:
    """{key: count} of the rows `where` selects; {None: count} without a key."""
    if key is None:
        return {None: session.scalar(select(count).where(*where)) or 0}
    labelled = key.label("key")
    rows = session.execute(select(labelled, count).where(*where).group_by(labelled))
    return {_key(k): n for k, n in rows}


def combine(
    amounts: Sequence[AmountRow],
    payers: tuple[dict[tuple[str | None, bool], int], int],
    visitors: dict[str | None, int] | None,
    all_visitors: int | None,
) -> tuple[list[Group], Group]:
    """The report's groups (unsorted) and totals from its parts."""
    groups: dict[tuple[str | None, bool], Group] = {}
    totals = Group(key=None, unattributed=False)
    for k, unattributed, currency, status, amount, count in amounts:
        group = groups.setdefault((k, unattributed), Group(k, unattributed))
        total = amount * count
        for target in (group, totals):
            target.gross[currency] = target.gross.get(currency, Decimal(0)) + total
            target.payments += count
            if status == "refunded":
                target.refunded[currency] = target.refunded.get(currency, Decimal(0)) + total
                target.refunds += count
    per_group, totals.paying_visitors = payers
    for (k, unattributed), count in per_group.items():
        groups.setdefault((k, unattributed), Group(k, unattributed)).paying_visitors = count
    if visitors is not None:
        remaining = dict(visitors)
        totals.visitors = all_visitors
        for (k, unattributed), group in groups.items():
            group.visitors = None if unattributed else remaining.pop(k, 0)
        for k, count in remaining.items():  # visited, never paid
            groups[(k, False)] = Group(k, False, visitors=count)
    return list(groups.values()), totals


def revenue(session: Session, query: ReportQuery) -> tuple[list[Group], Group]:
    """The whole report in one session (the API runs the parts concurrently instead)."""
    per_key, total = visitors(session, query) if query.group_by != "confidence" else (None, None)
    return combine(payment_amounts(session, query), paying_visitors(session, query), per_key, total)


def _session_filters(query: ReportQuery, entity: Any = VisitSession) -> list[ColumnElement[bool]]:
    filters = [
        entity.website_id == query.website_id,
        entity.started_at >= query.start,
        entity.started_at < query.end,
    ]
    if query.source is not None:
        filters.append(entity.source == query.source)
    if query.campaign is not None:
        filters.append(entity.campaign == query.campaign)
    return filters


def currencies(groups: Sequence[Group]) -> list[str]:
    return sorted({c for g in groups for c in g.gross})
