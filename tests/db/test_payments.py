"""The intake's batch write of payments, on the backend under test: outcomes, the first
history row, stored values, and the late-journey lookup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Payment, PaymentEvent, Website
from db.repositories import payments
from db.repositories.payments import NewPayment, Outcome
from db.session import unit_of_work
from tests.conftest import unique

PAID_AT = datetime(2026, 5, 17, 10, 30, tzinfo=UTC)


def new(site: Website, key: str, **fields: Any) -> NewPayment:
    values: dict[str, Any] = {
        "website_id": site.id,
        "provider": "manual",
        "provider_payment_id": key,
        "amount": Decimal("49.99"),
        "currency": "USD",
        "status": "paid",
        "paid_at": PAID_AT,
        **fields,
    }
    return NewPayment(**values)


def record(sessions: sessionmaker[Session], batch: list[NewPayment]) -> list[Any]:
    with unit_of_work(sessions) as session:
        return payments.record_batch(session, batch)


def test_a_batch_creates_new_payments_and_compares_the_others(
    sessions: sessionmaker[Session], site: Website
) -> None:
    stored_key, other_key = unique(), unique()
    record(sessions, [new(site, stored_key)])
    fresh = [unique() for _ in range(5)]
    results = record(
        sessions,
        [
            *(new(site, key) for key in fresh),
            new(site, stored_key),  # the same again
            new(site, fresh[0]),  # a repeat of one created in this batch
            new(site, stored_key, status="refunded"),
            new(site, other_key, amount=Decimal(10)),
            new(site, other_key, amount=Decimal(11)),  # same key, another amount
        ],
    )
    assert [r.outcome for r in results] == [
        *[Outcome.CREATED] * 5,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
        Outcome.STATUS_CHANGED,
        Outcome.CREATED,
        Outcome.CONFLICT,
    ]
    assert results[-1].conflicting_fields == ("amount",)
    assert results[7].payment["status"] == "refunded"
    assert [r.payment["provider_payment_id"] for r in results[:5]] == fresh
    with unit_of_work(sessions) as session:
        created = session.scalars(
            select(Payment).where(Payment.provider_payment_id.in_([*fresh, other_key]))
        ).all()
        assert len(created) == 6
        events = session.scalars(
            select(PaymentEvent).where(PaymentEvent.payment_id.in_([p.id for p in created]))
        ).all()
    # One first history row per new payment, recorded when it was received.
    assert sorted(e.payment_id for e in events) == sorted(p.id for p in created)
    received = {p.id: p.received_at for p in created}
    assert all(e.status == "paid" and e.previous_status is None for e in events)
    assert all(e.recorded_at == received[e.payment_id] for e in events)


def test_stored_values_round_trip(sessions: sessionmaker[Session], site: Website) -> None:
    visitor, session_id = uuid.uuid4(), uuid.uuid4()
    metadata = {"plan": "pro", "quote": 'a "b" \\ c', "nested": {"list": [1, 2.5, None]}, "é": "ü"}
    with_all = new(
        site,
        unique(),
        amount=Decimal("0.000000000001"),
        customer_email_hash="f" * 64,
        visitor_id=visitor,
        session_id=session_id,
        metadata=metadata,
    )
    bare = new(site, unique(), amount=Decimal(4900))
    results = record(sessions, [with_all, bare])
    with unit_of_work(sessions) as session:
        first = session.get_one(Payment, results[0].payment["id"])
        second = session.get_one(Payment, results[1].payment["id"])
    assert (first.amount, first.paid_at, first.visitor_id, first.session_id) == (
        Decimal("0.000000000001"),
        PAID_AT,
        visitor,
        session_id,
    )
    assert first.customer_email_hash == "f" * 64
    assert first.payment_metadata == metadata
    assert (first.attribution_status, first.attribution_confidence) == ("pending", "pending")
    assert first.attribution_attempts == 0
    assert first.enqueued_at == first.received_at == first.updated_at
    assert (second.amount, second.visitor_id, second.session_id) == (Decimal(4900), None, None)
    assert (second.customer_email_hash, second.payment_metadata) == (None, {})


def test_payments_awaiting_journey(sessions: sessionmaker[Session], site: Website) -> None:
    by_session, by_visitor, pending = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    results = record(
        sessions,
        [
            new(site, unique(), session_id=by_session),
            new(site, unique(), visitor_id=by_visitor),
            new(site, unique(), session_id=pending),
        ],
    )
    attributed = [r.payment["id"] for r in results[:2]]
    with unit_of_work(sessions) as session:
        for payment_id in attributed:
            payment = session.get_one(Payment, payment_id)
            payment.attribution_status, payment.attribution_confidence = "attributed", "low"
    with unit_of_work(sessions) as session:

        def awaiting(session_ids: list[uuid.UUID], visitor_ids: list[uuid.UUID]) -> set[Any]:
            found = payments.payments_awaiting_journey(
                session, site.id, session_ids=session_ids, visitor_ids=visitor_ids
            )
            return set(found)

        assert awaiting([by_session, pending], [by_visitor]) == set(attributed)
        assert awaiting([by_session], []) == {attributed[0]}
        assert awaiting([], [by_visitor]) == {attributed[1]}
        assert awaiting([pending], []) == set()  # still pending: its attribution will see it
        assert awaiting([], []) == set()
