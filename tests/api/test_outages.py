"""What the intake does when the broker or the database is down."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from celery import Celery
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from config import Environment, Settings
from db.models import Payment, Website
from db.session import unit_of_work
from tests.conftest import TEST_SECRET, LiveServer, bearer, unique
from tests.support import TcpProxy, queued_payment_ids
from workers.app import create_celery
from workers.enqueue import Publisher
from workers.tasks.sweep import requeue_stale_pending

DEAD_BROKER = "redis://127.0.0.1:9/0"


def test_broker_down_still_stores_the_payment_and_the_sweeper_queues_it(
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    site: Website,
    secret: str,
) -> None:
    dead = create_celery(settings.model_copy(update={"broker_url": DEAD_BROKER}))
    with LiveServer(create_app(settings, celery=dead)) as live:
        started = time.monotonic()
        response = httpx.post(
            f"{live.url}/api/payments/manual",
            json={
                "website_id": str(site.id),
                "amount": 10,
                "currency": "USD",
                "provider_payment_id": unique(),
            },
            headers=bearer(secret),
            timeout=30,
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        readiness = httpx.get(f"{live.url}/readyz", timeout=30)
    assert elapsed < 5, "the response must not wait on the broker"
    assert readiness.status_code == 503
    assert readiness.json()["checks"]["broker"].startswith("unreachable")

    payment_id = response.json()["payment"]["id"]
    with unit_of_work(sessions) as session:
        row = session.get_one(Payment, uuid.UUID(payment_id))
        assert row.attribution_status == "pending"

    # Once the broker is back, the sweeper queues what was never queued (it waits for
    # the queue to drain first: jobs left by other tests, which run without a worker).
    celery_app.control.purge()
    count = requeue_stale_pending(sessions, Publisher(celery_app), older_than=timedelta(0))
    assert count >= 1
    assert queued_payment_ids(celery_app, {payment_id}) == {payment_id}


def test_sweeper_leaves_recently_queued_payments_alone(
    sessions: sessionmaker[Session],
    celery_app: Celery,
    http: httpx.Client,
    site: Website,
    secret: str,
) -> None:
    response = http.post(
        "/api/payments/manual",
        json={
            "website_id": str(site.id),
            "amount": 10,
            "currency": "USD",
            "provider_payment_id": unique(),
        },
        headers=bearer(secret),
    )
    payment_id = uuid.UUID(response.json()["payment"]["id"])
    requeue_stale_pending(sessions, Publisher(celery_app), older_than=timedelta(hours=1))
    with unit_of_work(sessions) as session:
        enqueued_at = session.get_one(Payment, payment_id).enqueued_at
    assert enqueued_at is not None
    requeue_stale_pending(sessions, Publisher(celery_app), older_than=timedelta(hours=1))
    with unit_of_work(sessions) as session:
        assert session.get_one(Payment, payment_id).enqueued_at == enqueued_at


def test_database_down_is_503_with_retry_after(tmp_path: Path, site: Website) -> None:
    settings = Settings(
        data_dir=tmp_path,
        environment=Environment.DEVELOPMENT,
        secret=TEST_SECRET,
        database_url="postgresql://nobody@127.0.0.1:9/none",
    )
    with LiveServer(create_app(settings)) as live:
        response = httpx.post(
            f"{live.url}/api/payments/manual",
            json={
                "website_id": str(site.id),
                "amount": 10,
                "currency": "USD",
                "provider_payment_id": unique(),
            },
            headers=bearer("mk_live_" + "a" * 43),
            timeout=30,
        )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="needs a PostgreSQL server")
def test_database_lost_mid_write_is_503_and_a_retry_stores_it_once(
    settings: Settings,
    sessions: sessionmaker[Session],
    celery_app: Celery,
    site: Website,
    secret: str,
) -> None:
    url = make_url(settings.sqlalchemy_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = settings.model_copy(
        update={
            "database_url": url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            )
        }
    )
    body = {
        "website_id": str(site.id),
        "amount": 10,
        "currency": "USD",
        "provider_payment_id": unique(),
    }
    try:
        with LiveServer(create_app(proxied, celery=celery_app)) as live:
            url_ = f"{live.url}/api/payments/manual"
            # Warm the key cache, then lose the database.
            assert (
                httpx.post(
                    url_,
                    json={**body, "provider_payment_id": unique()},
                    headers=bearer(secret),
                    timeout=30,
                ).status_code
                == 200
            )
            proxy.cut()
            down = httpx.post(url_, json=body, headers=bearer(secret), timeout=30)
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"]
            proxy.restore()
            retried = httpx.post(url_, json=body, headers=bearer(secret), timeout=30)
            assert retried.status_code == 200, retried.text
            assert retried.json()["duplicate"] is False
    finally:
        proxy.close()
    with unit_of_work(sessions) as session:
        from sqlalchemy import func, select

        count = session.scalar(
            select(func.count()).where(Payment.provider_payment_id == body["provider_payment_id"])
        )
    assert count == 1
