"""The queries of an attribution batch: a few set-based reads, one guarded write.

A batch costs the worker a fixed amount per statement (building, executing and
reading it), so the reads are folded where they can be: the pending payments come
with the session and visitor their columns name and the visitors their email was
identified as, in one query; the sessions of every visitor found, in a second.
Ids carried only in a payment's metadata, and user ids, take a look-up of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import Identity, Payment, Visitor, VisitSession, Website

WebsiteVisitor = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True, slots=True)
class RecordedSession:
    """A recorded session, as much of it as attribution reads."""

    website_id: uuid.UUID
    id: uuid.UUID
    visitor_id: uuid.UUID
    started_at: datetime
    source: str | None
    medium: str | None
    campaign: str | None
    landing_path: str | None
    channel: str | None


@dataclass(frozen=True)
class PendingPayment:
    """A payment waiting for attribution, its site's rules, and the evidence its columns name.

    `session` is the recorded session `session_id` names, `visitor_known` whether
    `visitor_id` names a recorded visitor, `email_visitors` the visitors identify
    linked to `customer_email_hash`.
    """

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
    session: RecordedSession | None = None
    visitor_known: bool = False
    email_visitors: frozenset[uuid.UUID] = frozenset()


_SESSION_COLUMNS = (
    VisitSession.website_id,
    VisitSession.id,
    VisitSession.visitor_id,
    VisitSession.started_at,
    VisitSession.source,
    VisitSession.medium,
    VisitSession.campaign,
    VisitSession.landing_path,
    VisitSession.channel,
)

# Built once: constructing a statement costs more CPU than running a cached one.
_PENDING = (
    select(
        Payment.id,
        Payment.website_id,
        Payment.paid_at,
        Payment.session_id,
        Payment.visitor_id,
        Payment.customer_email_hash,
        Payment.payment_metadata.label("payment_metadata"),
        Payment.enqueued_at,
        Website.lookback_days,
        Website.attribution_model,
        Website.domains,
        *(c.label(f"s_{c.key}") for c in _SESSION_COLUMNS[1:]),  # all but website_id
        Visitor.id.label("known_visitor_id"),
        Identity.visitor_id.label("email_visitor_id"),
    )
    .join(Website, Website.id == Payment.website_id)
    .outerjoin(
        VisitSession,
        and_(VisitSession.website_id == Payment.website_id, VisitSession.id == Payment.session_id),
    )
    .outerjoin(
        Visitor, and_(Visitor.website_id == Payment.website_id, Visitor.id == Payment.visitor_id)
    )
    .outerjoin(
        Identity,
        and_(
            Identity.website_id == Payment.website_id,
            Identity.kind == "email",
            Identity.value_hash == Payment.customer_email_hash,
        ),
    )
    .where(
        Payment.id.in_(bindparam("payment_ids", expanding=True)),
        Payment.attribution_status == "pending",
    )
    # The order the intake locks payments in (by their key): results written in
    # this order cannot deadlock with a batch of repeats being recorded.
    .order_by(Payment.website_id, Payment.provider, Payment.provider_payment_id)
)


def load_pending(session: Session, payment_ids: Sequence[uuid.UUID]) -> list[PendingPayment]:
    """The payments among `payment_ids` still waiting for attribution, in the intake's lock
    order, with their site's rules and the evidence their own columns name (one query)."""
    if not payment_ids:
        return []
    rows = session.connection().execute(_PENDING, {"payment_ids": list(payment_ids)}).all()
    # A payment comes once per visitor its email was identified as (at least once).
    email_visitors: dict[uuid.UUID, set[uuid.UUID]] = {}
    first: dict[uuid.UUID, Row[Any]] = {}
    for r in rows:
        first.setdefault(r.id, r)
        if r.email_visitor_id is not None:
            email_visitors.setdefault(r.id, set()).add(r.email_visitor_id)
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
            session=_joined_session(r),
            visitor_known=r.known_visitor_id is not None,
            email_visitors=frozenset(email_visitors.get(r.id, ())),
        )
        for r in first.values()
    ]


def _joined_session(r: Row[Any]) -> RecordedSession | None:
    if r.s_id is None:
        return None
    return RecordedSession(
        website_id=r.website_id,
        id=r.s_id,
        visitor_id=r.s_visitor_id,
        started_at=r.s_started_at,
        source=r.s_source,
        medium=r.s_medium,
        campaign=r.s_campaign,
        landing_path=r.s_landing_path,
        channel=r.s_channel,
    )


def _recorded(r: Any) -> RecordedSession:
    return RecordedSession(
        website_id=r.website_id,
        id=r.id,
        visitor_id=r.visitor_id,
        started_at=r.started_at,
        source=r.source,
        medium=r.medium,
        campaign=r.campaign,
        landing_path=r.landing_path,
        channel=r.channel,
    )


_SESSIONS_BY_ID = select(*_SESSION_COLUMNS).where(
    tuple_(VisitSession.website_id, VisitSession.id).in_(bindparam("keys", expanding=True))
)


def sessions_by_id(
    session: Session, keys: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], RecordedSession]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = session.connection().execute(_SESSIONS_BY_ID, {"keys": keys})
    return {(r.website_id, r.id): _recorded(r) for r in rows}


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


_SESSIONS_OF_VISITORS = select(*_SESSION_COLUMNS).where(
    tuple_(VisitSession.website_id, VisitSession.visitor_id).in_(bindparam("keys", expanding=True)),
    VisitSession.started_at >= bindparam("since"),
    VisitSession.started_at <= bindparam("until"),
)


def sessions_of_visitors(
    session: Session, keys: Iterable[WebsiteVisitor], *, since: datetime, until: datetime
) -> dict[WebsiteVisitor, list[RecordedSession]]:
    """Sessions of these visitors started in [since, until], grouped by visitor."""
    keys = list(set(keys))
    if not keys:
        return {}
    found: dict[WebsiteVisitor, list[RecordedSession]] = {}
    rows = session.connection().execute(
        _SESSIONS_OF_VISITORS, {"keys": keys, "since": since, "until": until}
    )
    for r in rows:
        found.setdefault((r.website_id, r.visitor_id), []).append(_recorded(r))
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

_PAYMENTS = cast(Table, Payment.__table__)
_WRITE_RESULT = (
    update(_PAYMENTS)
    .where(
        _PAYMENTS.c.id == bindparam("b_id"),
        _PAYMENTS.c.attribution_status == "pending",
        _PAYMENTS.c.enqueued_at == bindparam("b_enqueued_at"),
    )
    .values(
        attribution_status="attributed",
        attributed_at=bindparam("b_now"),
        attribution_attempts=_PAYMENTS.c.attribution_attempts + 1,
        attribution_last_error=None,
        **{name: bindparam(f"b_{name}") for name in RESULT_FIELDS},
    )
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
    result = session.connection().execute(_WRITE_RESULT, params)
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
