"""The queries of an attribution batch: a few set-based reads, one guarded write."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import Identity, Payment, Visitor, VisitSession, Website

WebsiteVisitor = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True)
class PendingPayment:
    id: uuid.UUID
    website_id: uuid.UUID
    paid_at: datetime
    session_id: uuid.UUID | None
    visitor_id: uuid.UUID | None
    customer_email_hash: str | None
    metadata: dict[str, Any]
    enqueued_at: datetime | None
    lookback_days: int
    attribution_model: str
    domains: tuple[str, ...]


def load_pending(session: Session, payment_ids: Sequence[uuid.UUID]) -> list[PendingPayment]:
    """The payments among `payment_ids` still waiting for attribution, with their site's rules."""
    rows = session.execute(
        select(
            Payment.id,
            Payment.website_id,
            Payment.paid_at,
            Payment.session_id,
            Payment.visitor_id,
            Payment.customer_email_hash,
            Payment.payment_metadata,
            Payment.enqueued_at,
            Website.lookback_days,
            Website.attribution_model,
            Website.domains,
        )
        .join(Website, Website.id == Payment.website_id)
        .where(Payment.id.in_(payment_ids), Payment.attribution_status == "pending")
        # The order the intake locks payments in (by their key): results written in
        # this order cannot deadlock with a batch of repeats being recorded.
        .order_by(Payment.website_id, Payment.provider, Payment.provider_payment_id)
    )
    return [
        PendingPayment(
            id=r.id,
            website_id=r.website_id,
            paid_at=r.paid_at,
            session_id=r.session_id,
            visitor_id=r.visitor_id,
            customer_email_hash=r.customer_email_hash,
            metadata=r.payment_metadata or {},
            enqueued_at=r.enqueued_at,
            lookback_days=r.lookback_days,
            attribution_model=r.attribution_model,
            domains=tuple(r.domains),
        )
        for r in rows
    ]


def sessions_by_id(
    session: Session, keys: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], VisitSession]:
    keys = list(set(keys))
    if not keys:
        return {}
    found = session.scalars(
        select(VisitSession).where(tuple_(VisitSession.website_id, VisitSession.id).in_(keys))
    )
    return {(s.website_id, s.id): s for s in found}


def known_visitors(session: Session, keys: Iterable[WebsiteVisitor]) -> set[WebsiteVisitor]:
    keys = list(set(keys))
    if not keys:
        return set()
    rows = session.execute(
        select(Visitor.website_id, Visitor.id).where(
            tuple_(Visitor.website_id, Visitor.id).in_(keys)
        )
    )
    return {(r.website_id, r.id) for r in rows}


def identity_visitors(
    session: Session, keys: Iterable[tuple[uuid.UUID, str, str]]
) -> dict[tuple[uuid.UUID, str, str], set[uuid.UUID]]:
    """(website_id, kind, value_hash) -> the visitors identify linked to it."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = session.execute(
        select(Identity.website_id, Identity.kind, Identity.value_hash, Identity.visitor_id).where(
            tuple_(Identity.website_id, Identity.kind, Identity.value_hash).in_(keys)
        )
    )
    found: dict[tuple[uuid.UUID, str, str], set[uuid.UUID]] = {}
    for r in rows:
        found.setdefault((r.website_id, r.kind, r.value_hash), set()).add(r.visitor_id)
    return found


def sessions_of_visitors(
    session: Session, keys: Iterable[WebsiteVisitor], *, since: datetime, until: datetime
) -> dict[WebsiteVisitor, list[VisitSession]]:
    """Sessions of these visitors started in [since, until], grouped by visitor."""
    keys = list(set(keys))
    if not keys:
        return {}
    found: dict[WebsiteVisitor, list[VisitSession]] = {}
    rows = session.scalars(
        select(VisitSession).where(
            tuple_(VisitSession.website_id, VisitSession.visitor_id).in_(keys),
            VisitSession.started_at >= since,
            VisitSession.started_at <= until,
        )
    )
    for s in rows:
        found.setdefault((s.website_id, s.visitor_id), []).append(s)
    return found


RESULT_FIELDS = (
    "attribution_confidence",
    "attribution_method",
    "attribution_model",
    "attributed_source",
    "attributed_medium",
    "attributed_campaign",
    "attributed_landing_page",
    "attributed_channel",
    "matched_session_id",
    "matched_visitor_id",
)


def write_results(session: Session, results: Sequence[dict[str, Any]]) -> int:
    """Write each result unless its payment was re-queued or attributed meanwhile.

    Rows are written in the order given (`load_pending`'s, the intake's lock order).

    Each dict has `id`, `enqueued_at` (as read) and the RESULT_FIELDS. The guard
    on status and enqueued_at makes a task that runs twice write once, and
    lets a newer job (a replay, late evidence) win over an older one.
    """
    if not results:
        return 0
    table = cast(Table, Payment.__table__)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.attribution_status == "pending",
            table.c.enqueued_at == bindparam("b_enqueued_at"),
        )
        .values(
            attribution_status="attributed",
            attributed_at=bindparam("b_now"),
            attribution_attempts=table.c.attribution_attempts + 1,
            attribution_last_error=None,
            **{name: bindparam(f"b_{name}") for name in RESULT_FIELDS},
        )
    )
    now = utcnow()
    params = [
        {
            "b_id": r["id"],
            "b_enqueued_at": r["enqueued_at"],
            "b_now": now,
            **{f"b_{name}": r[name] for name in RESULT_FIELDS},
        }
        for r in results
    ]
    result = session.connection().execute(statement, params)
    return max(result.rowcount, 0)


def mark_failed(session: Session, payment_ids: Sequence[uuid.UUID], error: str) -> int:
    """Record a final failure on payments still pending, for an operator to replay."""
    if not payment_ids:
        return 0
    result = session.execute(
        update(Payment)
        .where(Payment.id.in_(payment_ids), Payment.attribution_status == "pending")
        .values(
            attribution_status="failed",
            attribution_last_error=error[:2000],
            attribution_attempts=Payment.attribution_attempts + 1,
        )
    )
    return max(int(result.rowcount), 0)  # type: ignore[attr-defined]
