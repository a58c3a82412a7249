"""POST /api/payments/manual through real HTTP, on the backend under test."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import KEY_CACHE_SECONDS
from api.schemas import PaymentResponse
from db.models import Payment, PaymentEvent, Website
from db.repositories import keys
from db.session import unit_of_work
from tests.conftest import Builders, bearer, unique

SPEC_EXAMPLE: dict[str, Any] = {
    "amount": 4900,
    "currency": "USD",
    "provider_payment_id": "pay_01HR9Z7N3M8P4KQ2Y6S5T1V9AB",
    "visitor_id": "a1b2c3d4-7e8f-4a9b-8c7d-123456789abc",
    "session_id": "b7f2db6a-7d74-45db-9796-3ddc9f6f2c74",
    "customer_email": "user@example.com",
    "provider": "manual",
    "status": "paid",
    "paid_at": "2026-05-17T10:30:00.000Z",
    "metadata": {"checkout": "custom"},
}


def post(http: httpx.Client, secret: str, body: Any, **kwargs: Any) -> httpx.Response:
    return http.post("/api/payments/manual", json=body, headers=bearer(secret), **kwargs)


def payment_body(site: Website, **fields: Any) -> dict[str, Any]:
    return {
        "website_id": str(site.id),
        "amount": 49,
        "currency": "USD",
        "provider_payment_id": unique(),
        **fields,
    }


def stored(sessions: sessionmaker[Session], payment_id: str) -> Payment:
    with unit_of_work(sessions) as session:
        return session.get_one(Payment, uuid.UUID(payment_id))


def test_the_spec_example_gets_the_documented_response(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    response = post(http, secret, {"website_id": str(site.id), **SPEC_EXAMPLE})
    assert response.status_code == 200, response.text
    body = response.json()
    PaymentResponse.model_validate(body)
    assert body["success"] is True
    assert body["duplicate"] is False
    payment = body["payment"]
    assert payment["website_id"] == str(site.id)
    assert payment["amount"] == 4900
    assert payment["currency"] == "USD"
    assert payment["provider_payment_id"] == SPEC_EXAMPLE["provider_payment_id"]
    assert payment["attributed_source"] is None
    assert payment["attributed_medium"] is None
    assert payment["attribution_confidence"] == "pending"
    assert payment["attribution_status"] == "pending"
    assert payment["status"] == "paid"
    assert payment["paid_at"] == "2026-05-17T10:30:00+00:00"

    row = stored(sessions, payment["id"])
    assert row.amount == Decimal("4900")
    assert row.provider == "manual"
    assert str(row.visitor_id) == SPEC_EXAMPLE["visitor_id"]
    assert str(row.session_id) == SPEC_EXAMPLE["session_id"]
    assert row.payment_metadata == {"checkout": "custom"}
    assert row.customer_email_hash is not None
    assert "example.com" not in row.customer_email_hash
    assert row.attribution_status == "pending"


def test_defaults(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    response = post(http, secret, payment_body(site, currency="eur"))
    assert response.status_code == 200, response.text
    payment = response.json()["payment"]
    assert payment["status"] == "paid"
    assert payment["provider"] == "manual"
    assert payment["currency"] == "EUR"
    row = stored(sessions, payment["id"])
    assert abs((row.paid_at - row.received_at).total_seconds()) < 5
    assert row.payment_metadata == {}


@pytest.mark.parametrize(
    ("sent", "stored_as", "echoed"),
    [
        (4900, "4900", 4900),
        (49.99, "49.99", 49.99),
        (0.1, "0.1", 0.1),
        (123456789012.345, "123456789012.345", 123456789012.345),
        (0, "0", 0),
    ],
)
def test_amounts_are_stored_exactly(
    http: httpx.Client,
    site: Website,
    secret: str,
    sessions: sessionmaker[Session],
    sent: float,
    stored_as: str,
    echoed: float,
) -> None:
    response = post(http, secret, payment_body(site, amount=sent))
    assert response.status_code == 200, response.text
    assert response.json()["payment"]["amount"] == echoed
    assert stored(sessions, response.json()["payment"]["id"]).amount == Decimal(stored_as)


@pytest.mark.parametrize("field", ["website_id", "amount", "currency", "provider_payment_id"])
def test_each_required_field(http: httpx.Client, site: Website, secret: str, field: str) -> None:
    body = payment_body(site)
    del body[field]
    response = post(http, secret, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert error["details"] == [{"field": field, "message": "Field required"}]


@pytest.mark.parametrize(
    ("fields", "offending"),
    [
        ({"amount": "49"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 1234567890123456.7}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"website_id": "not-a-uuid"}, "website_id"),
        ({"visitor_id": "123"}, "visitor_id"),
        ({"session_id": 5}, "session_id"),
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"paid_at": "yesterday"}, "paid_at"),
        ({"paid_at": "0001-01-01T00:00:00Z"}, "paid_at"),
        ({"paid_at": "2999-01-01T00:00:00Z"}, "paid_at"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"status": "settled"}, "status"),
        ({"provider_payment_id": ""}, "provider_payment_id"),
        ({"provider_payment_id": 123}, "provider_payment_id"),
        ({"provider": ""}, "provider"),
    ],
)
def test_invalid_fields_are_named(
    http: httpx.Client, site: Website, secret: str, fields: dict[str, Any], offending: str
) -> None:
    response = post(http, secret, payment_body(site, **fields))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert [d["field"] for d in error["details"]] == [offending]
    assert offending in error["message"]


def test_status_error_lists_the_accepted_values(
    http: httpx.Client, site: Website, secret: str
) -> None:
    response = post(http, secret, payment_body(site, status="settled"))
    message = response.json()["error"]["details"][0]["message"]
    for status in (
        "paid",
        "pending",
        "failed",
        "refunded",
        "partially_refunded",
        "disputed",
        "canceled",
    ):
        assert status in message


def test_every_invalid_field_is_reported_at_once(
    http: httpx.Client, site: Website, secret: str
) -> None:
    response = post(http, secret, {"website_id": str(site.id), "amount": "x", "currency": "ABC"})
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"amount", "currency", "provider_payment_id"}


@pytest.mark.parametrize("content", [b"{bad json", b"", b"[1, 2]", b'"text"', b"null"])
def test_invalid_json(http: httpx.Client, secret: str, content: bytes) -> None:
    response = http.post(
        "/api/payments/manual",
        content=content,
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_fields_are_ignored(http: httpx.Client, site: Website, secret: str) -> None:
    response = post(http, secret, payment_body(site, coupon="SPRING", nested={"a": 1}))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer mk_live_unknown"},
    ],
)
def test_missing_or_unknown_key_is_401(
    http: httpx.Client, site: Website, headers: dict[str, str]
) -> None:
    response = http.post("/api/payments/manual", json=payment_body(site), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_revoked_key_is_401(
    http: httpx.Client, site: Website, build: Builders, sessions: sessionmaker[Session]
) -> None:
    secret = build.key(websites_=(site,), scopes=("payments:write",), name="to-revoke")
    assert post(http, secret, payment_body(site)).status_code == 200
    with unit_of_work(sessions) as session:
        key = keys.find_active(session, secret)
        assert key is not None
        keys.revoke(session, key)
    # Revocation takes effect within the key cache's lifetime (seconds), on every process.
    deadline = time.monotonic() + KEY_CACHE_SECONDS + 5
    while post(http, secret, payment_body(site)).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.25)


def test_key_without_payments_write_is_403(
    http: httpx.Client, site: Website, build: Builders
) -> None:
    secret = build.key(websites_=(site,), scopes=("reports:read", "payments:read"))
    response = post(http, secret, payment_body(site))
    assert response.status_code == 403
    assert "payments:write" in response.json()["error"]["message"]


def test_key_for_another_website_is_403(http: httpx.Client, build: Builders, secret: str) -> None:
    other = build.website(name="other")
    response = post(http, secret, payment_body(other))
    assert response.status_code == 403
    assert "website_id" in response.json()["error"]["message"]


def test_unknown_website_is_403(http: httpx.Client, secret: str) -> None:
    response = post(
        http,
        secret,
        {
            "website_id": str(uuid.uuid4()),
            "amount": 1,
            "currency": "USD",
            "provider_payment_id": unique(),
        },
    )
    assert response.status_code == 403


def count_payments(sessions: sessionmaker[Session], site: Website) -> int:
    with unit_of_work(sessions) as session:
        return (
            session.scalar(
                select(func.count()).select_from(Payment).where(Payment.website_id == site.id)
            )
            or 0
        )


def test_same_payment_again_is_a_duplicate(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    body = payment_body(site, amount=49.99)
    first = post(http, secret, body).json()
    again = post(http, secret, {**body, "amount": 49.990}).json()
    assert again["duplicate"] is True
    assert again["payment"]["id"] == first["payment"]["id"]
    assert count_payments(sessions, site) == 1


def test_provider_is_part_of_the_key(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    body = payment_body(site)
    a = post(http, secret, {**body, "provider": "paddle"}).json()
    b = post(http, secret, {**body, "provider": "Gumroad"}).json()
    c = post(http, secret, {**body, "provider": "PADDLE"}).json()
    assert a["payment"]["id"] != b["payment"]["id"]
    assert c["payment"]["id"] == a["payment"]["id"]
    assert b["payment"]["provider"] == "gumroad"
    assert count_payments(sessions, site) == 2


def test_a_new_status_updates_the_payment_and_keeps_history(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    body = payment_body(site)
    created = post(http, secret, body).json()["payment"]
    refunded = post(http, secret, {**body, "status": "refunded"})
    assert refunded.status_code == 200
    assert refunded.json()["duplicate"] is False
    assert refunded.json()["payment"]["id"] == created["id"]
    assert refunded.json()["payment"]["status"] == "refunded"

    detail = http.get(f"/api/payments/{created['id']}", headers=bearer(secret)).json()["payment"]
    assert detail["status"] == "refunded"
    assert [(h["previous_status"], h["status"]) for h in detail["history"]] == [
        (None, "paid"),
        ("paid", "refunded"),
    ]
    again = post(http, secret, {**body, "status": "refunded"}).json()
    assert again["duplicate"] is True
    with unit_of_work(sessions) as session:
        events = session.scalar(
            select(func.count()).where(PaymentEvent.payment_id == uuid.UUID(created["id"]))
        )
    assert events == 2


@pytest.mark.parametrize(
    "change",
    [{"amount": 50}, {"currency": "EUR"}, {"amount": 50, "currency": "EUR", "status": "refunded"}],
)
def test_different_amount_or_currency_is_409_and_changes_nothing(
    http: httpx.Client,
    site: Website,
    secret: str,
    sessions: sessionmaker[Session],
    change: dict[str, Any],
) -> None:
    body = payment_body(site, amount=49, currency="USD")
    created = post(http, secret, body).json()["payment"]
    response = post(http, secret, {**body, **change})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert {d["field"] for d in error["details"]} == {"amount", "currency"} & set(change)
    row = stored(sessions, created["id"])
    assert (row.amount, row.currency, row.status) == (Decimal(49), "USD", "paid")


def test_concurrent_identical_posts_make_one_payment(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    body = payment_body(site)
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: post(http, secret, body), range(50)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["payment"]["id"] for r in responses}) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert count_payments(sessions, site) == 1


def test_concurrent_distinct_posts_are_all_stored(
    http: httpx.Client, site: Website, secret: str, sessions: sessionmaker[Session]
) -> None:
    bodies = [payment_body(site, amount=i) for i in range(100)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda b: post(http, secret, b), bodies))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["payment"]["id"] for r in responses}) == 100
    assert count_payments(sessions, site) == 100


def test_logs_never_contain_the_key_or_the_email(
    http: httpx.Client, site: Website, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    email = f"{uuid.uuid4().hex}@customer.example"
    post(http, secret, payment_body(site, customer_email=email))
    post(http, secret, payment_body(site, customer_email="broken@"))
    post(http, secret + "x", payment_body(site, customer_email=email))
    text = caplog.text
    assert secret.removeprefix("mk_live_")[:16] not in text
    assert email not in text
    assert "broken@" not in text
