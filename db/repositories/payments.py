"""Payments: idempotent batch writes, reads, and the attribution job queries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Row, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import Payment, PaymentEvent

PaymentKey = tuple[uuid.UUID, str, str]  # (website_id, provider, provider_payment_id)


@dataclass(frozen=True)
class NewPayment:
    """A payment as received, validated; `paid_at` already defaulted."""

    website_id: uuid.UUID
    provider: str
    provider_payment_id: str
    amount: Decimal
    currency: str
    status: str
    paid_at: datetime
    customer_email_hash: str | None = None
    visitor_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> PaymentKey:
        return (self.website_id, self.provider, self.provider_payment_id)


class Outcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"  # the same payment again: nothing changed
    STATUS_CHANGED = "status_changed"
    CONFLICT = "conflict"  # same key, different amount or currency: nothing changed


@dataclass(frozen=True)
class RecordResult:
    outcome: Outcome
    payment: dict[str, Any]  # the stored payment, after this request
    conflicting_fields: tuple[str, ...] = ()


# The columns a payment is shown with.
VIEW_COLUMNS = (
    Payment.id,
    Payment.website_id,
    Payment.provider,
    Payment.provider_payment_id,
    Payment.amount,
    Payment.currency,
    Payment.status,
    Payment.paid_at,
    Payment.received_at,
    Payment.updated_at,
    Payment.attribution_status,
    Payment.attribution_confidence,
    Payment.attribution_method,
    Payment.attribution_model,
    Payment.attributed_source,
    Payment.attributed_medium,
    Payment.attributed_campaign,
    Payment.attributed_landing_page,
    Payment.attributed_channel,
    Payment.matched_session_id,
    Payment.matched_visitor_id,
    Payment.attributed_at,
    Payment.attribution_attempts,
    Payment.attribution_last_error,
)
_VIEW_NAMES = tuple(c.key for c in VIEW_COLUMNS)


def _view(row: Row[*tuple[Any, ...]] | Mapping[str, Any]) -> dict[str, Any]:
    data = row._mapping if isinstance(row, Row) else row
    return {name: data[name] for name in _VIEW_NAMES}


def record_batch(session: Session, payments: Sequence[NewPayment]) -> list[RecordResult]:
    """Write a batch of received payments idempotently, in arrival order.

    The first payment of a key is inserted with ON CONFLICT DO NOTHING; every
    other one (a retry, a concurrent duplicate, a status change) is compared
    with the stored row under a row lock.
    """
    now = utcnow()
    firsts: dict[PaymentKey, int] = {}
    for index, payment in enumerate(payments):
        firsts.setdefault(payment.key, index)
    # Insert in key order so concurrent batches take unique-index locks in one order.
    candidates = sorted(firsts.items(), key=lambda item: (str(item[0][0]), *item[0][1:]))
    rows = [_new_row(payments[index], now) for _key, index in candidates]
    inserted: set[uuid.UUID] = set()
    if rows:
        if session.get_bind().dialect.name == "postgresql":
            inserted = _insert_new_postgresql(session, rows, now)
        else:
            inserted = _insert_new(session, rows, now)
    created_keys = {
        key for (key, _), row in zip(candidates, rows, strict=True) if row["id"] in inserted
    }

    current: dict[PaymentKey, dict[str, Any]] = {
        (row["website_id"], row["provider"], row["provider_payment_id"]): _view(row)
        for row in rows
        if row["id"] in inserted
    }
    others = {p.key for p in payments} - created_keys
    if others:
        current.update(
            (
                (row.website_id, row.provider, row.provider_payment_id),
                _view(row),
            )
            for row in _lock_existing(session, sorted(others, key=lambda k: (str(k[0]), *k[1:])))
        )

    results: list[RecordResult] = []
    changes: list[tuple[uuid.UUID, str, str]] = []  # (payment id, previous, new status)
    for index, payment in enumerate(payments):
        stored = current[payment.key]
        if payment.key in created_keys and firsts[payment.key] == index:
            results.append(RecordResult(Outcome.CREATED, dict(stored)))
            continue
        conflicts = tuple(
            name
            for name, differs in (
                ("amount", stored["amount"] != payment.amount),
                ("currency", stored["currency"] != payment.currency),
            )
            if differs
        )
        if conflicts:
            results.append(RecordResult(Outcome.CONFLICT, dict(stored), conflicts))
        elif stored["status"] != payment.status:
            changes.append((stored["id"], stored["status"], payment.status))
            stored.update(status=payment.status, updated_at=now)
            results.append(RecordResult(Outcome.STATUS_CHANGED, dict(stored)))
        else:
            results.append(RecordResult(Outcome.DUPLICATE, dict(stored)))

    if changes:
        final_status = {payment_id: new for payment_id, _previous, new in changes}
        for payment_id, status in final_status.items():
            session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .values(status=status, updated_at=now)
            )
        session.execute(
            insert(PaymentEvent),
            [
                {"payment_id": pid, "status": new, "previous_status": previous, "recorded_at": now}
                for pid, previous, new in changes
            ],
        )
    return results


def _new_row(payment: NewPayment, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "website_id": payment.website_id,
        "provider": payment.provider,
        "provider_payment_id": payment.provider_payment_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "customer_email_hash": payment.customer_email_hash,
        "paid_at": payment.paid_at,
        "visitor_id": payment.visitor_id,
        "session_id": payment.session_id,
        "payment_metadata": payment.metadata,
        "received_at": now,
        "updated_at": now,
        "attribution_status": "pending",
        "attribution_confidence": "pending",
        "attribution_method": None,
        "attribution_model": None,
        "attributed_source": None,
        "attributed_medium": None,
        "attributed_campaign": None,
        "attributed_landing_page": None,
        "attributed_channel": None,
        "matched_session_id": None,
        "matched_visitor_id": None,
        "attributed_at": None,
        # Marked as queued now: the intake publishes right after the commit, and
        # the sweeper re-queues it if that publish never happened.
        "enqueued_at": now,
        "attribution_attempts": 0,
        "attribution_last_error": None,
    }


INSERTED_COLUMNS = (
    "id",
    "website_id",
    "provider",
    "provider_payment_id",
    "amount",
    "currency",
    "status",
    "customer_email_hash",
    "paid_at",
    "visitor_id",
    "session_id",
    "payment_metadata",
    "received_at",
    "updated_at",
    "attribution_status",
    "attribution_confidence",
    "enqueued_at",
    "attribution_attempts",
)


@cache
def _insert_statement(dialect: str) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table = Payment.__table__
    return (
        module.insert(table)
        .on_conflict_do_nothing(
            index_elements=[table.c.website_id, table.c.provider, table.c.provider_payment_id]
        )
        .returning(table.c.id)
    )


def _insert_new(session: Session, rows: Sequence[dict[str, Any]], now: datetime) -> set[uuid.UUID]:
    """Insert the rows (in their order) unless their key exists, with their first history
    row; the ids inserted. Any dialect: SQLAlchemy's executemany of a cached statement."""
    # Only the columns a new payment sets: the attribution columns start out NULL.
    values = [
        {("metadata" if k == "payment_metadata" else k): row[k] for k in INSERTED_COLUMNS}
        for row in rows
    ]
    inserted = set(session.scalars(_insert_statement(session.get_bind().dialect.name), values))
    if inserted:
        session.execute(
            insert(PaymentEvent),
            [
                {"payment_id": row["id"], "status": row["status"], "recorded_at": now}
                for row in rows
                if row["id"] in inserted
            ],
        )
    return inserted


# PostgreSQL: one statement whose text is the same for every batch size, so psycopg
# parses it once and prepares it on each connection. The rows come as one array per
# column (in binary, `%b`, which psycopg dumps several times faster than text; amounts
# in text, faster for decimals), are inserted in array order (the key order the caller
# sorted them in), and the new ones get their first history row in the same statement.
_INSERT_NEW_POSTGRESQL = """
WITH new AS (
    INSERT INTO payments (
        id, website_id, provider, provider_payment_id, amount, currency, status,
        customer_email_hash, paid_at, visitor_id, session_id, metadata,
        received_at, updated_at, enqueued_at,
        attribution_status, attribution_confidence, attribution_attempts
    )
    SELECT
        r.id, r.website_id, r.provider, r.provider_payment_id, r.amount, r.currency, r.status,
        r.customer_email_hash, r.paid_at, r.visitor_id, r.session_id, r.metadata,
        received.at, received.at, received.at,
        'pending', 'pending', 0
    FROM unnest(
        %b::uuid[], %b::uuid[], %b::text[], %b::text[], %s::numeric[], %b::text[], %b::text[],
        %b::text[], %b::timestamptz[], %b::uuid[], %b::uuid[], %b::jsonb[]
    ) WITH ORDINALITY AS r(
        id, website_id, provider, provider_payment_id, amount, currency, status,
        customer_email_hash, paid_at, visitor_id, session_id, metadata, n
    ), (SELECT %b::timestamptz AS at) AS received
    ORDER BY r.n
    ON CONFLICT (website_id, provider, provider_payment_id) DO NOTHING
    RETURNING id, status, received_at
), history AS (
    INSERT INTO payment_events (payment_id, status, recorded_at)
    SELECT id, status, received_at FROM new
)
SELECT id FROM new
"""


def _insert_new_postgresql(
    session: Session, rows: Sequence[dict[str, Any]], now: datetime
) -> set[uuid.UUID]:
    """What `_insert_new` does, in one statement of fixed text."""
    columns = (
        "id",
        "website_id",
        "provider",
        "provider_payment_id",
        "amount",
        "currency",
        "status",
        "customer_email_hash",
        "paid_at",
        "visitor_id",
        "session_id",
    )
    params: list[Any] = [[row[name] for row in rows] for name in columns]
    params.append([orjson.dumps(row["payment_metadata"]).decode() for row in rows])
    params.append(now)
    result = session.connection().exec_driver_sql(_INSERT_NEW_POSTGRESQL, tuple(params))
    return {row[0] for row in result}


def _lock_existing(session: Session, keys: Sequence[PaymentKey]) -> Sequence[Row[*tuple[Any, ...]]]:
    query = (
        select(*VIEW_COLUMNS)
        .where(tuple_(Payment.website_id, Payment.provider, Payment.provider_payment_id).in_(keys))
        .order_by(Payment.website_id, Payment.provider, Payment.provider_payment_id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.execute(query).all()


def get_view(session: Session, payment_id: uuid.UUID) -> dict[str, Any] | None:
    row = session.execute(select(*VIEW_COLUMNS).where(Payment.id == payment_id)).first()
    return _view(row) if row else None


def get(session: Session, payment_id: uuid.UUID) -> Payment | None:
    return session.get(Payment, payment_id)


@dataclass(frozen=True)
class PageCursor:
    received_at: datetime
    id: uuid.UUID


def list_page(
    session: Session,
    *,
    website_id: uuid.UUID,
    status: str | None = None,
    confidence: str | None = None,
    attribution_status: str | None = None,
    since: datetime | None = None,
    after: PageCursor | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Payments of a website, newest first; `after` continues from a previous page."""
    query = select(*VIEW_COLUMNS).where(Payment.website_id == website_id)
    if status:
        query = query.where(Payment.status == status)
    if confidence:
        query = query.where(Payment.attribution_confidence == confidence)
    if attribution_status:
        query = query.where(Payment.attribution_status == attribution_status)
    if since:
        query = query.where(Payment.received_at >= since)
    if after:
        query = query.where(
            tuple_(Payment.received_at, Payment.id) < tuple_(after.received_at, after.id)
        )
    query = query.order_by(Payment.received_at.desc(), Payment.id.desc()).limit(limit)
    return [_view(row) for row in session.execute(query)]


def history(session: Session, payment_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.execute(
        select(PaymentEvent.status, PaymentEvent.previous_status, PaymentEvent.recorded_at)
        .where(PaymentEvent.payment_id == payment_id)
        .order_by(PaymentEvent.id)
    )
    return [dict(row._mapping) for row in rows]


def claim_stale_pending(
    session: Session, *, older_than: timedelta, limit: int, now: datetime | None = None
) -> list[uuid.UUID]:
    """Pending payments queued longer ago than `older_than`: mark them queued now, return them."""
    now = now or utcnow()
    query = (
        select(Payment.id)
        .where(
            Payment.attribution_status == "pending",
            Payment.enqueued_at < now - older_than,
        )
        .order_by(Payment.enqueued_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query).all())
    if ids:
        session.execute(update(Payment).where(Payment.id.in_(ids)).values(enqueued_at=now))
    return ids


def backlog(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    pending, oldest = session.execute(
        select(func.count(), func.min(Payment.received_at)).where(
            Payment.attribution_status == "pending"
        )
    ).one()
    failed = session.scalar(select(func.count()).where(Payment.attribution_status == "failed"))
    if isinstance(oldest, datetime) and oldest.tzinfo is None:  # SQLite aggregates lose the type
        oldest = oldest.replace(tzinfo=now.tzinfo)
    elif isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=now.tzinfo)
    return {
        "pending": pending,
        "failed": failed or 0,
        "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else None,
    }


def weak_payments_for_email(
    session: Session, website_id: uuid.UUID, email_hash: str
) -> list[uuid.UUID]:
    """Attributed payments with this email whose confidence an identify could raise."""
    return list(
        session.scalars(
            select(Payment.id).where(
                Payment.website_id == website_id,
                Payment.customer_email_hash == email_hash,
                Payment.attribution_status != "pending",
                Payment.attribution_confidence.in_(("unknown", "low")),
            )
        )
    )


# The same query with a fixed text for any number of ids (see _INSERT_NEW_POSTGRESQL).
_AWAITING_JOURNEY_POSTGRESQL = """
SELECT id FROM payments
WHERE website_id = %b
    AND (session_id = ANY(%b::uuid[]) OR visitor_id = ANY(%b::uuid[]))
    AND attribution_status <> 'pending'
    AND attribution_confidence IN ('unknown', 'low', 'medium')
"""


def payments_awaiting_journey(
    session: Session,
    website_id: uuid.UUID,
    *,
    session_ids: Sequence[uuid.UUID],
    visitor_ids: Sequence[uuid.UUID],
) -> list[uuid.UUID]:
    """Payments naming a session or visitor that just became known, attributed without it."""
    if session.get_bind().dialect.name == "postgresql":
        if not session_ids and not visitor_ids:
            return []
        result = session.connection().exec_driver_sql(
            _AWAITING_JOURNEY_POSTGRESQL, (website_id, list(session_ids), list(visitor_ids))
        )
        return [row[0] for row in result]
    conditions = []
    if session_ids:
        conditions.append(Payment.session_id.in_(session_ids))
    if visitor_ids:
        conditions.append(Payment.visitor_id.in_(visitor_ids))
    if not conditions:
        return []
    return list(
        session.scalars(
            select(Payment.id).where(
                Payment.website_id == website_id,
                or_(*conditions),
                Payment.attribution_status != "pending",
                Payment.attribution_confidence.in_(("unknown", "low", "medium")),
            )
        )
    )


def mark_for_reattribution(
    session: Session, payment_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> None:
    """Put attributed or failed payments back in the queue (their result stays until replaced)."""
    if payment_ids:
        session.execute(
            update(Payment)
            .where(Payment.id.in_(payment_ids))
            .values(attribution_status="pending", enqueued_at=now or utcnow())
        )


REPLAY_STATUSES = ("failed", "pending", "unknown", "all")


def replay_candidates(
    session: Session,
    *,
    status: str,
    website_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: uuid.UUID | None = None,
    limit: int = 1000,
) -> list[uuid.UUID]:
    """Ids of payments to attribute again, in id order from `after` (keyset pages).

    `status`: failed, pending, unknown (attributed with confidence unknown) or all.
    `since`/`until` bound `paid_at` (inclusive).
    """
    query = select(Payment.id).order_by(Payment.id).limit(limit)
    if status == "failed":
        query = query.where(Payment.attribution_status == "failed")
    elif status == "pending":
        query = query.where(Payment.attribution_status == "pending")
    elif status == "unknown":
        query = query.where(
            Payment.attribution_status == "attributed",
            Payment.attribution_confidence == "unknown",
        )
    elif status != "all":
        raise ValueError(f"status must be one of {', '.join(REPLAY_STATUSES)}")
    if website_id is not None:
        query = query.where(Payment.website_id == website_id)
    if since is not None:
        query = query.where(Payment.paid_at >= since)
    if until is not None:
        query = query.where(Payment.paid_at <= until)
    if after is not None:
        query = query.where(Payment.id > after)
    return list(session.scalars(query))


def recent_lags(session: Session, *, seconds: int, limit: int = 10_000) -> list[float]:
    """Received-to-attributed seconds of payments attributed in the last `seconds`."""
    since = utcnow() - timedelta(seconds=seconds)
    rows = session.execute(
        select(Payment.received_at, Payment.attributed_at)
        .where(Payment.attributed_at >= since, Payment.attribution_status == "attributed")
        .limit(limit)
    )
    return [
        max(0.0, (attributed - received).total_seconds())
        for received, attributed in rows
        if attributed is not None
    ]


def claim_failed_due(
    session: Session,
    *,
    older_than: timedelta,
    max_attempts: int,
    limit: int,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Failed payments with attempts left, last queued before `older_than`: mark them pending."""
    now = now or utcnow()
    query = (
        select(Payment.id)
        .where(
            Payment.attribution_status == "failed",
            Payment.attribution_attempts < max_attempts,
            Payment.enqueued_at < now - older_than,
        )
        .order_by(Payment.enqueued_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query).all())
    mark_for_reattribution(session, ids, now=now)
    return ids
