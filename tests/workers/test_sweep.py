"""The sweeper's second job: failed payments get a few spaced-out retries, then wait."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from db.base import utcnow
from db.models import Payment, Website
from db.session import unit_of_work
from tests.conftest import bearer, unique
from workers.enqueue import Publisher
from workers.tasks.sweep import MAX_AUTOMATIC_ATTEMPTS, requeue_due_failed


def failed_payment(
    http: httpx.Client,
    secret: str,
    site: Website,
    sessions: sessionmaker[Session],
    *,
    attempts: int,
    age: timedelta,
) -> uuid.UUID:
    response = http.post(
        "/api/payments/manual",
        headers=bearer(secret),
        json={
            "website_id": str(site.id),
            "amount": 1,
            "currency": "USD",
            "provider_payment_id": unique(),
        },
    )
    payment_id = uuid.UUID(response.json()["payment"]["id"])
    with unit_of_work(sessions) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(
                attribution_status="failed",
                attribution_attempts=attempts,
                enqueued_at=utcnow() - age,
                attribution_last_error="boom",
            )
        )
    return payment_id


def status(sessions: sessionmaker[Session], payment_id: uuid.UUID) -> str:
    with unit_of_work(sessions) as session:
        return session.get_one(Payment, payment_id).attribution_status


def test_failed_payments_with_attempts_left_are_retried_after_a_pause(
    http: httpx.Client,
    site: Website,
    secret: str,
    sessions: sessionmaker[Session],
    celery_app: Celery,
) -> None:
    due = failed_payment(http, secret, site, sessions, attempts=1, age=timedelta(hours=1))
    recent = failed_payment(http, secret, site, sessions, attempts=1, age=timedelta(seconds=5))
    exhausted = failed_payment(
        http, secret, site, sessions, attempts=MAX_AUTOMATIC_ATTEMPTS, age=timedelta(hours=1)
    )
    requeue_due_failed(sessions, Publisher(celery_app), older_than=timedelta(minutes=10))
    assert status(sessions, due) == "pending"
    assert status(sessions, recent) == "failed"
    assert status(sessions, exhausted) == "failed"
