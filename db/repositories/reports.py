"""Revenue reports: grouped sums that stay exact (amounts are summed as decimals)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, cast, distinct, func, literal, select, text
from sqlalchemy.orm import Session

from db.models import Payment, VisitSession

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
    if _is_postgres(session):
        return cast(func.date(func.timezone(query.timezone, column)), String)
    return func.date(column, f"{query.utc_offset_minutes:+d} minutes")


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
    return [(k, bool(u), c, st, Decimal(a), n) for k, u, c, st, a, n in rows]


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
    found = {(k, bool(u)): n for k, u, n in per_group}
    total = session.scalar(select(func.count(distinct(Payment.matched_visitor_id))).where(*kept))
    return found, total or 0


def visitors_by_key(session: Session, query: ReportQuery) -> dict[str | None, int]:
    """Distinct visitors whose sessions started in the range, per group key."""
    _tune(session)
    if query.group_by == "day":
        key = _day(session, VisitSession.started_at, query).label("key")
    else:
        key = _SESSION_KEYS[query.group_by].label("key")
    pairs = (
        select(key, VisitSession.visitor_id)
        .where(*_session_filters(query))
        .group_by(key, VisitSession.visitor_id)
        .subquery()
    )
    rows = session.execute(select(pairs.c.key, func.count()).group_by(pairs.c.key))
    return {k: n for k, n in rows}


def total_visitors(session: Session, query: ReportQuery) -> int:
    """Distinct visitors whose sessions started in the range."""
    _tune(session)
    unique = (
        select(VisitSession.visitor_id)
        .where(*_session_filters(query))
        .group_by(VisitSession.visitor_id)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(unique)) or 0


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
    with_visitors = query.group_by != "confidence"
    return combine(
        payment_amounts(session, query),
        paying_visitors(session, query),
        visitors_by_key(session, query) if with_visitors else None,
        total_visitors(session, query) if with_visitors else None,
    )


def _session_filters(query: ReportQuery) -> list[ColumnElement[bool]]:
    filters = [
        VisitSession.website_id == query.website_id,
        VisitSession.started_at >= query.start,
        VisitSession.started_at < query.end,
    ]
    if query.source is not None:
        filters.append(VisitSession.source == query.source)
    if query.campaign is not None:
        filters.append(VisitSession.campaign == query.campaign)
    return filters


def currencies(groups: Sequence[Group]) -> list[str]:
    return sorted({c for g in groups for c in g.gross})
