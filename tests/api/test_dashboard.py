"""The dashboard page on the real app: served safely, and in Chromium it shows what the
reports API returns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from db.models import VisitSession
from db.session import unit_of_work
from tests.api.browser import chromium, desktop_context
from tests.api.test_reports import Made, Shop
from tests.conftest import Builders, LiveServer, bearer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_the_page_and_its_files_are_served_with_a_strict_policy(http: httpx.Client) -> None:
    page = http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    for name, kind in (("dashboard.js", "application/javascript"), ("dashboard.css", "text/css")):
        response = http.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
    assert http.get("/static/metrivo.db").status_code == 404
    assert http.get("/static/..%2Fconfig.py").status_code == 404


def test_dashboard_shows_the_reports_of_the_real_api(
    server: LiveServer, http: httpx.Client, build: Builders, sessions: sessionmaker[Session]
) -> None:
    shop = Shop(http, build, sessions)
    today = datetime.now(UTC).date()
    visitor = shop.visit("google")
    shop.visit("facebook")
    for made in (
        Made(
            Decimal("49"),
            "USD",
            "paid",
            "google",
            datetime.combine(today, time(1), UTC),
            visitor,
            "spring",
        ),
        Made(
            Decimal("120"),
            "USD",
            "paid",
            "facebook",
            datetime.combine(today - timedelta(days=3), time(9), UTC),
            None,
        ),
        Made(
            Decimal("20"),
            "USD",
            "paid",
            None,
            datetime.combine(today - timedelta(days=1), time(9), UTC),
            None,
        ),
    ):
        shop.pay(made)
    expected = http.get(
        "/api/reports/revenue",
        headers=bearer(shop.key),
        params={"website_id": str(shop.site.id), "group_by": "source"},
    ).json()["totals"]

    with (
        chromium() as browser,
        desktop_context(browser, locale="en-US", timezone_id="UTC") as watched,
    ):
        page = watched.context.new_page()
        page.goto(f"{server.url}/dashboard")
        page.fill("#key-input", shop.key)
        page.click("#signin-submit")
        page.wait_for_selector('#app[data-state="ready"]')
        assert Decimal(page.get_attribute("#total-revenue", "data-value") or "") == Decimal(
            str(expected["revenue"]["USD"])
        )
        assert page.text_content("#total-revenue") == "$189.00"
        assert page.get_attribute("#total-payments", "data-value") == str(expected["payments"])
        assert page.get_attribute("#total-visitors", "data-value") == str(expected["visitors"])
        assert "11% unattributed" in (page.text_content("#unattributed-share") or "")
        keys = page.eval_on_selector_all(
            "#group-table tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)"
        )
        assert keys[:2] == ["facebook", "google"]

        page.click('button[data-group-by="campaign"]')
        page.wait_for_selector('#group-table[data-group="campaign"]')
        page.wait_for_selector('#app[data-state="ready"]')
        campaigns = page.eval_on_selector_all(
            "#group-table tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)"
        )
        assert "spring" in campaigns
        assert page.locator("#payments tbody.payment").count() == 3
        assert page.evaluate("sessionStorage.getItem('metrivo_key')") == shop.key
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-real.png"), full_page=True)


def test_demo_page_records_a_visit_and_shows_the_ids(
    server: LiveServer, build: Builders, sessions: sessionmaker[Session]
) -> None:
    site = build.website(name="Demo", domains=("127.0.0.1", "localhost"))
    with chromium() as browser, desktop_context(browser) as watched:
        page = watched.context.new_page()
        page.goto(
            f"{server.url}/demo?key={site.public_key}&website={site.id}"
            "&utm_source=newsletter&utm_medium=email"
        )
        page.wait_for_function(
            "() => document.getElementById('session-id').textContent.length > 30"
        )
        session_id = page.text_content("#session-id") or ""
        assert str(site.id) in (page.text_content("#curl") or "")
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    row = None
    while row is None and datetime.now(UTC) < deadline:
        with unit_of_work(sessions) as session:
            row = session.get(VisitSession, (site.id, uuid.UUID(session_id)))
    assert row is not None
    assert (row.source, row.medium) == ("newsletter", "email")
