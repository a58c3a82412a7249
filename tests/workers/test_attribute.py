"""End to end through HTTP with a real worker: track -> identify -> pay -> attributed."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.cli import main
from api.track import Visit, record_visits
from attribution.identity import email_hash, user_id_hash
from config import Settings, get_settings
from db.base import utcnow
from db.models import Payment, Website
from db.repositories import payments, tracking
from db.repositories.payments import NewPayment
from db.session import unit_of_work
from tests.api.test_track import CHROME
from tests.conftest import TEST_SECRET, bearer, unique
from tests.workers.conftest import WorkerProcess
from workers.enqueue import BackgroundPublisher, Publisher
from workers.tasks.attribute import attribute_payments
from workers.tasks.sweep import requeue_stale_pending

pytestmark = pytest.mark.subprocess


def track(
    http: httpx.Client,
    site: Website,
    *,
    visitor: str,
    session: str,
    url: str,
    referrer: str | None = None,
) -> None:
    response = http.post(
        "/api/track",
        headers={"User-Agent": CHROME},
        json={
            "publicKey": site.public_key,
            "visitorId": visitor,
            "sessionId": session,
            "type": "pageview",
            "url": url,
            "referrer": referrer,
        },
    )
    assert response.status_code == 202, response.text


def pay(http: httpx.Client, secret: str, site: Website, **fields: Any) -> str:
    response = http.post(
        "/api/payments/manual",
        headers=bearer(secret),
        json={
            "website_id": str(site.id),
            "amount": 49,
            "currency": "USD",
            "provider_payment_id": unique(),
            **fields,
        },
    )
    assert response.status_code == 200, response.text
    payment_id: str = response.json()["payment"]["id"]
    return payment_id


def wait_attributed(
    http: httpx.Client,
    secret: str,
    payment_id: str,
    *,
    confidence: str | None = None,
    timeout: float = 45,
) -> dict[str, Any]:
    """Poll until the payment is attributed (with `confidence`, if given)."""
    deadline = time.monotonic() + timeout
    payment: dict[str, Any] = {}
    while time.monotonic() < deadline:
        payment = http.get(f"/api/payments/{payment_id}", headers=bearer(secret)).json()["payment"]
        done = payment["attribution_status"] in ("attributed", "failed")
        if done and (confidence is None or payment["attribution_confidence"] == confidence):
            return payment
        time.sleep(0.2)
    raise AssertionError(f"not attributed in time: {payment}")


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def test_tracked_session_gives_high_confidence(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    track(
        http,
        site,
        visitor=visitor,
        session=session,
        url="https://shop.example.com/pricing",
        referrer="https://www.google.com/",
    )
    payment = wait_attributed(
        http, secret, pay(http, secret, site, visitor_id=visitor, session_id=session)
    )
    assert payment["attribution_confidence"] == "high"
    assert (payment["attributed_source"], payment["attributed_medium"]) == ("google", "organic")
    assert payment["attributed_channel"] == "Organic Search"
    assert payment["attributed_landing_page"] == "/pricing"
    assert payment["attribution_method"] == "session"
    assert payment["evidence"]["matched_session_id"] == session
    assert payment["evidence"]["model"] == "last_non_direct"


def test_session_id_in_metadata_counts_as_high(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    track(
        http,
        site,
        visitor=visitor,
        session=session,
        url="https://shop.example.com/?utm_source=producthunt&utm_medium=referral",
    )
    payment = wait_attributed(
        http, secret, pay(http, secret, site, metadata={"metrivo_session_id": session})
    )
    assert (payment["attribution_confidence"], payment["attributed_source"]) == (
        "high",
        "producthunt",
    )


def test_email_matched_through_identify_gives_medium(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    email = f"{uuid.uuid4().hex}@example.com"
    track(
        http,
        site,
        visitor=visitor,
        session=session,
        url="https://shop.example.com/?utm_source=newsletter&utm_medium=email",
    )
    http.post(
        "/api/identify", json={"publicKey": site.public_key, "visitorId": visitor, "email": email}
    )
    payment = wait_attributed(http, secret, pay(http, secret, site, customer_email=email))
    assert (payment["attribution_confidence"], payment["attribution_method"]) == ("medium", "email")
    assert payment["attributed_source"] == "newsletter"


def test_metadata_only_gives_low_and_nothing_gives_unknown(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    low = pay(
        http,
        secret,
        site,
        metadata={"utm_source": "bing", "utm_medium": "cpc", "utm_campaign": "brand"},
    )
    unknown = pay(http, secret, site)
    low_payment = wait_attributed(http, secret, low)
    assert (
        low_payment["attribution_confidence"],
        low_payment["attributed_source"],
        low_payment["attributed_medium"],
        low_payment["attributed_campaign"],
    ) == ("low", "bing", "cpc", "brand")
    unknown_payment = wait_attributed(http, secret, unknown)
    assert unknown_payment["attribution_confidence"] == "unknown"
    assert unknown_payment["attributed_source"] is None


def test_identify_after_the_payment_upgrades_it(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    email = f"{uuid.uuid4().hex}@example.com"
    track(
        http,
        site,
        visitor=visitor,
        session=session,
        url="https://shop.example.com/",
        referrer="https://www.reddit.com/r/saas",
    )
    payment_id = pay(http, secret, site, customer_email=email)
    assert wait_attributed(http, secret, payment_id)["attribution_confidence"] == "unknown"
    http.post(
        "/api/identify", json={"publicKey": site.public_key, "visitorId": visitor, "email": email}
    )
    upgraded = wait_attributed(http, secret, payment_id, confidence="medium")
    assert upgraded["attributed_source"] == "reddit"


def test_payment_before_its_pageview_is_fixed_when_the_pageview_arrives(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    payment_id = pay(http, secret, site, visitor_id=visitor, session_id=session)
    assert wait_attributed(http, secret, payment_id)["attribution_confidence"] == "unknown"
    track(
        http,
        site,
        visitor=visitor,
        session=session,
        url="https://shop.example.com/?utm_source=youtube&utm_medium=video",
    )
    fixed = wait_attributed(http, secret, payment_id, confidence="high")
    assert fixed["attributed_source"] == "youtube"


def test_a_task_delivered_twice_writes_once(
    worker: WorkerProcess,
    http: httpx.Client,
    site: Website,
    secret: str,
    sessions: sessionmaker[Session],
    celery_app: Celery,
) -> None:
    payment_id = pay(http, secret, site)
    first = wait_attributed(http, secret, payment_id)
    Publisher(celery_app).attribute([uuid.UUID(payment_id)])  # the same job again
    counts = attribute_payments(sessions, TEST_SECRET.encode(), [uuid.UUID(payment_id)])
    assert counts["attributed"] == 0
    time.sleep(1)
    again = http.get(f"/api/payments/{payment_id}", headers=bearer(secret)).json()["payment"]
    assert again["evidence"]["attributed_at"] == first["evidence"]["attributed_at"]
    assert again["attribution_attempts"] == first["attribution_attempts"] == 1


def test_refund_keeps_the_attribution(
    worker: WorkerProcess, http: httpx.Client, site: Website, secret: str
) -> None:
    visitor, session = ids()
    track(
        http, site, visitor=visitor, session=session, url="https://shop.example.com/?utm_source=x1"
    )
    body = {"visitor_id": visitor, "session_id": session}
    payment_id = pay(http, secret, site, provider_payment_id="refund-me-" + session, **body)
    attributed = wait_attributed(http, secret, payment_id)
    http.post(
        "/api/payments/manual",
        headers=bearer(secret),
        json={
            "website_id": str(site.id),
            "amount": 49,
            "currency": "USD",
            "provider_payment_id": "refund-me-" + session,
            "status": "refunded",
        },
    )
    refunded = http.get(f"/api/payments/{payment_id}", headers=bearer(secret)).json()["payment"]
    assert refunded["status"] == "refunded"
    assert refunded["attributed_source"] == attributed["attributed_source"] == "x1"
    assert refunded["attribution_status"] == "attributed"


def test_poisoned_payment_fails_with_a_reason_and_replay_recovers_it(
    worker: WorkerProcess,
    http: httpx.Client,
    site: Website,
    secret: str,
    sessions: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    celery_app: Celery,
) -> None:
    poisoned = pay(http, secret, site)
    wait_attributed(http, secret, poisoned)
    # Bad data that slipped past validation (written straight into the table here),
    # then a re-attribution of that payment.
    with unit_of_work(sessions) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == uuid.UUID(poisoned))
            .values(paid_at=datetime(1, 1, 2, tzinfo=UTC))
        )
        payments.mark_for_reattribution(session, [uuid.UUID(poisoned)])
    Publisher(celery_app).attribute([uuid.UUID(poisoned)])
    failed = wait_attributed(http, secret, poisoned)
    assert failed["attribution_status"] == "failed"
    assert "OverflowError" in failed["attribution_last_error"]

    # The operator fixes the data, then replays the failed payments.
    with unit_of_work(sessions) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == uuid.UUID(poisoned))
            .values(paid_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    monkeypatch.setenv("METRIVO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("METRIVO_SECRET", TEST_SECRET)
    monkeypatch.setenv("METRIVO_ENV", "development")
    if settings.broker_url:
        monkeypatch.setenv("BROKER_URL", settings.broker_url)
    get_settings.cache_clear()
    try:
        assert main(["replay", "--status", "failed", "--website", str(site.id)]) == 0
    finally:
        get_settings.cache_clear()
    recovered = wait_attributed(http, secret, poisoned, confidence="unknown")
    assert recovered["attribution_status"] == "attributed"
    assert recovered["attribution_last_error"] is None


def test_a_worker_killed_mid_batch_loses_nothing(
    worker: WorkerProcess,
    http: httpx.Client,
    site: Website,
    secret: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
) -> None:
    worker.stop(kill=True)  # SIGKILL: no warm shutdown, unacknowledged work is lost with it
    payment_ids = [pay(http, secret, site) for _ in range(20)]
    replacement = WorkerProcess(settings, name="replacement")
    try:
        replacement.wait_ready()
        # Whatever the dead worker held comes back through the pending sweeper.
        deadline = time.monotonic() + 60
        pending = set(payment_ids)
        while pending and time.monotonic() < deadline:
            requeue_stale_pending(sessions, Publisher(celery_app), older_than=timedelta(seconds=2))
            for payment_id in list(pending):
                got = http.get(f"/api/payments/{payment_id}", headers=bearer(secret)).json()
                if got["payment"]["attribution_status"] == "attributed":
                    pending.discard(payment_id)
            time.sleep(0.5)
        assert not pending, f"{len(pending)} payment(s) never attributed"
    finally:
        replacement.stop()


def test_a_mixed_batch_finds_the_evidence_each_payment_finds_alone(
    sessions: sessionmaker[Session], site: Website, celery_app: Celery
) -> None:
    """The batch's reads are folded (its payments come with the session, visitor and email
    identities their columns name, in one query); ids carried in metadata and user ids are
    looked up apart. Each payment must find the same evidence as when attributed alone."""
    key = TEST_SECRET.encode()
    now = utcnow()
    visitor = {name: uuid.uuid4() for name in ("column", "meta", "known", "mail1", "mail2", "user")}
    session = {name: uuid.uuid4() for name in visitor}
    email, user = f"{uuid.uuid4().hex}@example.com", f"user-{uuid.uuid4().hex}"
    visits = [
        Visit(
            website_id=site.id,
            domains=("shop.example.com",),
            visitor_id=visitor[name],
            session_id=session[name],
            is_pageview=True,
            url=f"https://shop.example.com/?utm_source={name}&utm_medium=cpc",
            referrer=None,
            received_at=now - timedelta(minutes=10 - i),  # mail2 visited after mail1
        )
        for i, name in enumerate(visitor)
    ]
    background = BackgroundPublisher(Publisher(celery_app))
    try:
        record_visits(sessions, background, visits)
    finally:
        background.close()
    with unit_of_work(sessions) as db:
        for kind, value, name in (
            ("email", email_hash(key, email), "mail1"),
            ("email", email_hash(key, email), "mail2"),
            ("user_id", user_id_hash(key, user), "user"),
        ):
            tracking.link_identity(
                db,
                website_id=site.id,
                kind=kind,
                value_hash=value,
                visitor_id=visitor[name],
                properties={},
                now=now,
            )

    def new(**fields: Any) -> NewPayment:
        return NewPayment(site.id, "manual", unique(), Decimal(49), "USD", "paid", now, **fields)

    batch = [
        new(visitor_id=visitor["column"], session_id=session["column"]),
        new(metadata={"metrivo_session_id": str(session["meta"])}),
        new(metadata={"metrivo_visitor_id": str(visitor["known"])}),
        new(customer_email_hash=email_hash(key, email)),
        new(metadata={"user_id": user}),
        new(),
    ]
    with unit_of_work(sessions) as db:
        ids = [uuid.UUID(str(r.payment["id"])) for r in payments.record_batch(db, batch)]

    def outcomes() -> list[tuple[Any, ...]]:
        with unit_of_work(sessions) as db:
            rows = {
                r.id: tuple(r)[1:]
                for r in db.execute(
                    select(
                        Payment.id,
                        Payment.attribution_status,
                        Payment.attribution_confidence,
                        Payment.attribution_method,
                        Payment.attributed_source,
                        Payment.matched_session_id,
                    ).where(Payment.id.in_(ids))
                )
            }
        return [rows[i] for i in ids]

    assert attribute_payments(sessions, key, ids) == {"attributed": 6, "failed": 0, "skipped": 0}
    together = outcomes()
    assert [
        (status, confidence, method, source) for status, confidence, method, source, _ in together
    ] == [
        ("attributed", "high", "session", "column"),
        ("attributed", "high", "session", "meta"),
        ("attributed", "high", "visitor", "known"),
        ("attributed", "medium", "email", "mail2"),
        ("attributed", "medium", "user_id", "user"),
        ("attributed", "unknown", "none", None),
    ]
    with unit_of_work(sessions) as db:
        payments.mark_for_reattribution(db, ids)
    for payment_id in ids:
        assert attribute_payments(sessions, key, [payment_id])["attributed"] == 1
    assert outcomes() == together
