"""Revenue reports: grouped sums that stay exact (amounts are summed as decimals)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, cast, distinct, func, literal, select
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


def revenue(session: Session, query: ReportQuery) -> tuple[list[Group], Group]:
    """Groups (unsorted) and the totals of a website's received payments in the range."""
    key = _payment_key(session, query).label("key")
    split = (literal(False) if query.group_by in ("day", "confidence") else _unattributed()).label(
        "unattributed"
    )
    filters = [*_payment_filters(query), Payment.status.in_(RECEIVED)]
    groups: dict[tuple[str | None, bool], Group] = {}
    totals = Group(key=None, unattributed=False)

    # Summed per distinct amount, then multiplied out as decimals: exact on every backend.
    rows = session.execute(
        select(key, split, Payment.currency, Payment.status, Payment.amount, func.count())
        .where(*filters)
        .group_by(key, split, Payment.currency, Payment.status, Payment.amount)
    )
    for k, unattributed, currency, status, amount, count in rows:
        group = groups.setdefault((k, bool(unattributed)), Group(k, bool(unattributed)))
        total = Decimal(amount) * count
        for target in (group, totals):
            target.gross[currency] = target.gross.get(currency, Decimal(0)) + total
            target.payments += count
            if status == "refunded":
                target.refunded[currency] = target.refunded.get(currency, Decimal(0)) + total
                target.refunds += count

    # Paying visitors are the visitors payments were matched to (NULLs are not counted),
    # so that conversion compares visitors with visitors.
    kept = [*_payment_filters(query), Payment.status.in_(KEPT)]
    payers = session.execute(
        select(key, split, func.count(distinct(Payment.matched_visitor_id)))
        .where(*kept)
        .group_by(key, split)
    )
    for k, unattributed, count in payers:
        group = groups.setdefault((k, bool(unattributed)), Group(k, bool(unattributed)))
        group.paying_visitors = count
    totals.paying_visitors = (
        session.scalar(select(func.count(distinct(Payment.matched_visitor_id))).where(*kept)) or 0
    )

    if query.group_by != "confidence":
        visitors = _visitors(session, query)
        totals.visitors = _total_visitors(session, query)
        for (k, unattributed), group in groups.items():
            group.visitors = None if unattributed else visitors.pop(k, 0)
        for k, count in visitors.items():  # visited, never paid
            groups[(k, False)] = Group(k, False, visitors=count)
    return list(groups.values()), totals


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


def _visitors(session: Session, query: ReportQuery) -> dict[str | None, int]:
    if query.group_by == "day":
        key = _day(session, VisitSession.started_at, query)
    else:
        key = _SESSION_KEYS[query.group_by]
    rows = session.execute(
        select(key, func.count(distinct(VisitSession.visitor_id)))
        .where(*_session_filters(query))
        .group_by(key)
    )
    return {k: count for k, count in rows}


def _total_visitors(session: Session, query: ReportQuery) -> int:
    return (
        session.scalar(
            select(func.count(distinct(VisitSession.visitor_id))).where(*_session_filters(query))
        )
        or 0
    )


def currencies(groups: Sequence[Group]) -> list[str]:
    return sorted({c for g in groups for c in g.gross})
