"""POST /api/admin/replay and GET /metrics: admin scope, website authorization, figures."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from db.models import Payment, Website
from db.session import unit_of_work
from tests.conftest import Builders, bearer, unique


def paid(http: httpx.Client, secret: str, site: Website) -> str:
    response = http.post(
        "/api/payments/manual",
        headers=bearer(secret),
        json={
            "website_id": str(site.id),
            "amount": 5,
            "currency": "EUR",
            "provider_payment_id": unique(),
        },
    )
    payment_id: str = response.json()["payment"]["id"]
    return payment_id


def test_replay_requeues_failed_payments_of_the_website(
    http: httpx.Client, build: Builders, site: Website, sessions: sessionmaker[Session]
) -> None:
    admin = build.key(websites_=(site,), scopes=("admin", "payments:write", "payments:read"))
    failed = [paid(http, admin, site) for _ in range(3)]
    with unit_of_work(sessions) as session:
        session.execute(
            update(Payment)
            .where(Payment.id.in_([uuid.UUID(i) for i in failed]))
            .values(attribution_status="failed", attribution_last_error="boom")
        )
    dry = http.post(
        "/api/admin/replay",
        headers=bearer(admin),
        json={"website_id": str(site.id), "dry_run": True},
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["matched"], dry.json()["queued"]) == (3, 0)
    listing = http.get(
        "/api/payments",
        params={"website_id": str(site.id), "attribution": "failed"},
        headers=bearer(admin),
    )
    assert len(listing.json()["payments"]) == 3

    done = http.post(
        "/api/admin/replay",
        headers=bearer(admin),
        json={"website_id": str(site.id), "status": "failed"},
    )
    assert done.status_code == 200
    assert done.json()["matched"] == 3
    assert done.json()["queued"] + done.json()["unpublished"] == 3
    for payment_id in failed:
        payment = http.get(f"/api/payments/{payment_id}", headers=bearer(admin)).json()["payment"]
        assert payment["attribution_status"] == "pending"


def test_replay_needs_admin_for_that_website(
    http: httpx.Client, build: Builders, site: Website, secret: str
) -> None:
    body = {"website_id": str(site.id)}
    assert http.post("/api/admin/replay", headers=bearer(secret), json=body).status_code == 403
    other_admin = build.key(websites_=(build.website(name="o"),), scopes=("admin",))
    assert http.post("/api/admin/replay", headers=bearer(other_admin), json=body).status_code == 403
    assert http.post("/api/admin/replay", json=body).status_code == 401
    admin = build.key(websites_=(site,), scopes=("admin",))
    bad = http.post(
        "/api/admin/replay",
        headers=bearer(admin),
        json={"website_id": str(site.id), "status": "everything"},
    )
    assert bad.status_code == 400


def test_metrics_for_admins(
    http: httpx.Client, build: Builders, site: Website, secret: str
) -> None:
    paid(http, secret, site)
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=bearer(secret)).status_code == 403
    admin = build.key(websites_=(site,), scopes=("admin",))
    response = http.get("/metrics", headers=bearer(admin))
    assert response.status_code == 200
    text = response.text
    for name in (
        "metrivo_payments_pending",
        "metrivo_payments_failed",
        "metrivo_attribution_oldest_pending_seconds",
        "metrivo_attribution_lag_seconds",
        "metrivo_payments_attributed_recent",
        "metrivo_sessions_unlinked",
        "metrivo_http_requests_total",
    ):
        assert name in text
    assert 'route="/api/payments/manual"' in text
