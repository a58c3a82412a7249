"""The dashboard page in headless Chromium against a canned stand-in of the reports API.

The stand-in serves the real static files with the production CSP and answers the three
endpoints of design.md section 3 with fixed JSON in the contract's shape, so a CSP violation,
a script error or a request without the bearer key shows up here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tests.api.browser import chromium, desktop_context
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "api" / "static"
ARTIFACTS = ROOT / "test-artifacts"

KEY = "mk_live_dashboard_test_key_0123456789"
KEY_WITHOUT_REPORTS = "mk_live_dashboard_key_without_reports"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SITE_ID = "5d0c8f4e-2a71-4c55-9b1e-6f3a2d9c7e10"
WEBSITES = [
    {"id": SITE_ID, "name": "Acme Shop", "domains": ["acme.example"], "timezone": "UTC"},
    {
        "id": "9a4b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
        "name": "Side project",
        "domains": ["side.example"],
        "timezone": "UTC",
    },
]
SESSION_ID = "b7f2db6a-7d74-45db-9796-3ddc9f6f2c74"


def row(
    key: str | None,
    revenue: dict[str, float],
    *,
    refunded: dict[str, float] | None = None,
    payments: int,
    paying_visitors: int,
    visitors: int | None,
    unattributed: bool = False,
    refunds: int = 0,
) -> dict[str, Any]:
    refunded = refunded or {}
    rate = round(paying_visitors / visitors, 4) if visitors else None
    return {
        "key": key,
        "unattributed": unattributed,
        "revenue": revenue,
        "gross": {c: v + refunded.get(c, 0) for c, v in revenue.items()},
        "refunded": refunded,
        "payments": payments,
        "refunds": refunds,
        "paying_visitors": paying_visitors,
        "visitors": visitors,
        "conversion_rate": rate,
        "revenue_per_visitor": (
            {c: round(v / visitors, 2) for c, v in revenue.items()} if visitors else None
        ),
    }


TOTALS = {
    k: v
    for k, v in row(
        None,
        {"EUR": 1200, "USD": 5000},
        refunded={"USD": 1000},
        payments=6,
        refunds=1,
        paying_visitors=5,
        visitors=160,
    ).items()
    if k not in ("key", "unattributed")
}
UNATTRIBUTED = row(
    None, {"USD": 100}, payments=1, paying_visitors=1, visitors=None, unattributed=True
)
REFUNDED = {"USD": 1000}
ROWS: dict[str, list[dict[str, Any]]] = {
    "source": [
        row(
            "google",
            {"USD": 3900},
            refunded=REFUNDED,
            payments=3,
            refunds=1,
            paying_visitors=2,
            visitors=120,
        ),
        row("newsletter", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=40),
        UNATTRIBUTED,
    ],
    "medium": [
        row(
            "organic", {"USD": 3900}, refunded=REFUNDED, payments=3, paying_visitors=2, visitors=120
        ),
        row("email", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=40),
        UNATTRIBUTED,
    ],
    "campaign": [
        row("spring-sale", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=40),
        row(None, {"USD": 3900}, refunded=REFUNDED, payments=3, paying_visitors=2, visitors=120),
        UNATTRIBUTED,
    ],
    "channel": [
        row(
            "Organic Search",
            {"USD": 3900},
            refunded=REFUNDED,
            payments=3,
            paying_visitors=2,
            visitors=120,
        ),
        row("Email", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=40),
        UNATTRIBUTED,
    ],
    "landing_page": [
        row(
            "/pricing", {"USD": 2900}, refunded=REFUNDED, payments=2, paying_visitors=1, visitors=70
        ),
        row("/", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=60),
        row("/blog/attribution-guide", {"USD": 1000}, payments=1, paying_visitors=1, visitors=30),
        UNATTRIBUTED,
    ],
    "confidence": [
        row("high", {"USD": 3900}, refunded=REFUNDED, payments=3, paying_visitors=2, visitors=None),
        row("medium", {"EUR": 1200, "USD": 1000}, payments=2, paying_visitors=2, visitors=None),
        row("low", {}, payments=0, paying_visitors=0, visitors=None),
        row("unknown", {"USD": 100}, payments=1, paying_visitors=1, visitors=None),
        row("pending", {}, payments=0, paying_visitors=0, visitors=None),
    ],
}
DAILY_USD = [0, 120, 340, 0, 560, 220, 90, 0, 410, 150]


def day_rows(first: date, last: date) -> list[dict[str, Any]]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [
        row(
            d.isoformat(),
            {"USD": DAILY_USD[d.toordinal() % len(DAILY_USD)]} if d.toordinal() % 10 else {},
            payments=1 if d.toordinal() % 10 and DAILY_USD[d.toordinal() % 10] else 0,
            paying_visitors=1 if d.toordinal() % 10 and DAILY_USD[d.toordinal() % 10] else 0,
            visitors=6,
        )
        for d in days
    ]


def payment(
    number: int,
    amount: float,
    currency: str,
    *,
    status: str = "paid",
    source: str | None = None,
    medium: str | None = None,
    campaign: str | None = None,
    confidence: str,
    method: str | None,
    session_id: str | None = None,
) -> dict[str, Any]:
    pending = confidence == "pending"
    return {
        "id": f"0b6f1e2a-0000-4000-8000-00000000000{number}",
        "amount": amount,
        "currency": currency,
        "status": status,
        "paid_at": f"2026-12-0{5 - number}T1{number}:3{number}:00+00:00",
        "provider": "manual",
        "provider_payment_id": f"pay_{number}",
        "attributed_source": source,
        "attributed_medium": medium,
        "attributed_campaign": campaign,
        "attributed_landing_page": "/pricing" if source else None,
        "attributed_channel": "Organic Search" if source == "google" else None,
        "attribution_confidence": confidence,
        "attribution_status": "pending" if pending else "attributed",
        "attribution_method": method,
        "evidence": {
            "method": method,
            "model": None if pending else "last_non_direct",
            "matched_session_id": session_id,
            "matched_visitor_id": "a1b2c3d4-7e8f-4a9b-8c7d-123456789abc" if session_id else None,
            "attributed_at": None if pending else "2026-12-04T12:00:01+00:00",
        },
    }


PAYMENTS = [
    payment(
        1,
        49,
        "USD",
        source="google",
        medium="organic",
        confidence="high",
        method="session_id",
        session_id=SESSION_ID,
    ),
    payment(
        2,
        1200,
        "EUR",
        source="newsletter",
        medium="email",
        campaign="spring-sale",
        confidence="medium",
        method="email",
        session_id="5c0e9d3a-1111-4b2c-8d3e-aaaaaaaaaaaa",
    ),
    payment(3, 100, "USD", confidence="unknown", method="none"),
    payment(4, 29.99, "USD", status="pending", confidence="pending", method=None),
]


@dataclass(frozen=True)
class Seen:
    path: str
    params: dict[str, str]
    authorization: str | None


class CannedApi:
    """The dashboard's three static files and three endpoints, with fixed answers."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/dashboard", self.static("dashboard.html")),
                Route("/static/dashboard.js", self.static("dashboard.js")),
                Route("/static/dashboard.css", self.static("dashboard.css")),
                Route("/api/websites", self.websites),
                Route("/api/reports/revenue", self.revenue),
                Route("/api/reports/payments", self.payments),
            ]
        )

    def static(self, name: str) -> Any:
        async def serve(_request: Request) -> Response:
            return FileResponse(STATIC / name, headers={"Content-Security-Policy": CSP})

        return serve

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def _check(self, request: Request, *, reports: bool) -> Response | None:
        authorization = request.headers.get("authorization")
        self.seen.append(Seen(request.url.path, dict(request.query_params), authorization))
        if authorization not in (f"Bearer {KEY}", f"Bearer {KEY_WITHOUT_REPORTS}"):
            return error(401, "unauthorized", "Missing or unknown secret key.")
        if reports and authorization != f"Bearer {KEY}":
            return error(403, "forbidden", "This key lacks the reports:read scope.")
        if reports and request.query_params.get("website_id") not in {w["id"] for w in WEBSITES}:
            return error(403, "forbidden", "This key is not authorized for that website.")
        return None

    async def websites(self, request: Request) -> Response:
        return self._check(request, reports=False) or json({"success": True, "websites": WEBSITES})

    async def revenue(self, request: Request) -> Response:
        if refused := self._check(request, reports=True):
            return refused
        params = request.query_params
        first, last = date.fromisoformat(params["from"]), date.fromisoformat(params["to"])
        group_by = params["group_by"]
        if params.get("format") == "csv":
            body = f"{group_by},unattributed,currency,revenue\ngoogle,,USD,3900\n"
            return Response(body, media_type="text/csv; charset=utf-8")
        rows = day_rows(first, last) if group_by == "day" else ROWS[group_by]
        return json(
            {
                "success": True,
                "website_id": params["website_id"],
                "from": first.isoformat(),
                "to": last.isoformat(),
                "timezone": "UTC",
                "group_by": group_by,
                "currencies": ["EUR", "USD"],
                "rows": rows,
                "totals": TOTALS,
            }
        )

    async def payments(self, request: Request) -> Response:
        if refused := self._check(request, reports=True):
            return refused
        limit = int(request.query_params["limit"])
        return json({"success": True, "payments": PAYMENTS[:limit], "next_cursor": None})


def json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={"Content-Security-Policy": CSP})


def error(status: int, code: str, message: str) -> Response:
    return json({"success": False, "error": {"code": code, "message": message}}, status)


@pytest.fixture
def canned() -> Iterator[tuple[CannedApi, LiveServer]]:
    api = CannedApi()
    with LiveServer(api.app()) as live:
        yield api, live


def sign_in(page: Page, key: str) -> None:
    page.fill("#key-input", key)
    page.click("#signin-submit")


def wait_ready(page: Page) -> None:
    page.wait_for_selector('#app[data-state="ready"]')


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_dashboard_against_canned_api_on_desktop_and_phone(
    canned: tuple[CannedApi, LiveServer],
) -> None:
    api, live = canned
    today = datetime.now(UTC).date()
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        with desktop_context(
            browser, viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC"
        ) as watched:
            page = watched.context.new_page()
            page.goto(f"{live.url}/dashboard")
            assert page.locator("#dashboard").is_hidden()
            sign_in(page, KEY)
            wait_ready(page)

            # The default report: the first website, the last 30 days ending today.
            revenue = api.requests("/api/reports/revenue")
            assert {s.params["group_by"] for s in revenue} == {
                "source",
                "day",
                "confidence",
                "campaign",
                "landing_page",
            }
            for seen in revenue:
                assert seen.params["website_id"] == SITE_ID
                assert seen.params["from"] == (today - timedelta(days=29)).isoformat()
                assert seen.params["to"] == today.isoformat()
            assert all(s.authorization == f"Bearer {KEY}" for s in api.seen)
            assert page.input_value("#from") == (today - timedelta(days=29)).isoformat()
            assert page.get_attribute('[data-range="30"]', "aria-pressed") == "true"

            # Totals, in the currency with the most revenue (USD, although EUR sorts first).
            assert page.input_value("#currency") == "USD"
            assert text(page, "#total-revenue") == "$5,000.00"
            assert page.get_attribute("#total-revenue", "data-value") == "5000"
            assert text(page, "#total-payments") == "6"
            assert text(page, "#total-paying-visitors") == "5"
            assert text(page, "#total-visitors") == "160"
            assert text(page, "#total-conversion-rate") == "3.1%"
            assert text(page, "#unattributed-share") == "2% unattributed"
            assert "$6,000.00 gross" in text(page, "#total-revenue-detail")

            # The grouping table, the unattributed row last and marked.
            rows = page.locator("#group-table tbody tr")
            assert rows.evaluate_all("rs => rs.map(r => r.dataset.key)") == [
                "google",
                "newsletter",
                "",
            ]
            unattributed = page.locator('#group-table tr[data-unattributed="true"]')
            assert unattributed.locator("td").first.inner_text().startswith("Unattributed")
            assert page.locator("#day-chart rect.bar").count() == 30
            assert page.locator("#group-chart rect.bar-unattributed").count() == 1
            assert text(page, "#top-campaigns tbody tr:first-child td:first-child") == "spring-sale"
            assert page.locator("#top-landing-pages tbody tr").count() == 3
            assert page.locator("#confidence-bar rect[data-confidence]").count() == 3
            why = text(page, f'#payments tbody[data-payment-id="{PAYMENTS[0]["id"]}"] .why')
            assert "session b7f2… (google / organic), model last_non_direct" in why
            assert page.locator("#payments tbody.payment").count() == len(PAYMENTS)
            assert api.requests("/api/reports/payments")[0].params["limit"] == "10"

            # Switching the grouping asks for it and redraws the table.
            with page.expect_request(lambda r: "group_by=medium" in r.url) as asked:
                page.click('[data-group-by="medium"]')
            assert query(asked.value.url)["group_by"] == "medium"
            assert asked.value.headers["authorization"] == f"Bearer {KEY}"
            page.wait_for_selector('#group-table[data-group="medium"]')
            wait_ready(page)
            assert rows.evaluate_all("rs => rs.map(r => r.dataset.key)") == ["organic", "email", ""]
            assert text(page, "#group-key-heading").lower() == "medium"
            assert page.get_attribute('[data-group-by="medium"]', "aria-pressed") == "true"

            # Another currency re-renders without asking again.
            page.select_option("#currency", "EUR")
            assert text(page, "#total-revenue") == "€1,200.00"
            assert text(page, "#unattributed-share") == "0% unattributed"
            page.select_option("#currency", "USD")

            # The CSV of the current grouping, fetched with the key and saved from a blob.
            with (
                page.expect_download() as download,
                page.expect_request(lambda r: "format=csv" in r.url) as csv_request,
            ):
                page.click("#download-csv")
            assert query(csv_request.value.url)["group_by"] == "medium"
            assert csv_request.value.headers["authorization"] == f"Bearer {KEY}"
            assert download.value.suggested_filename.startswith("metrivo-revenue-medium-")
            assert Path(download.value.path()).read_text().startswith("medium,unattributed")

            # A quick range.
            with page.expect_request(lambda r: "group_by=day" in r.url) as asked:
                page.click('[data-range="7"]')
            assert query(asked.value.url)["from"] == (today - timedelta(days=6)).isoformat()
            wait_ready(page)
            assert page.locator("#day-chart rect.bar").count() == 7
            page.click('[data-range="30"]')
            wait_ready(page)

            # The key is in this tab's sessionStorage only.
            assert page.evaluate("sessionStorage.getItem('metrivo_key')") == KEY
            local = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
            assert KEY not in local
            assert KEY not in page.evaluate("document.cookie")
            assert all(KEY not in c["value"] for c in watched.context.cookies())
            assert all(s.authorization == f"Bearer {KEY}" for s in api.seen)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            page.click("#sign-out")
            assert page.evaluate("sessionStorage.getItem('metrivo_key')") is None
            assert page.locator("#signin-form").is_visible()
            assert page.locator("#dashboard").is_hidden()
            assert text(page, "#total-revenue") == "—"

        with desktop_context(
            browser,
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-US",
            timezone_id="UTC",
        ) as watched:
            page = watched.context.new_page()
            page.goto(f"{live.url}/dashboard")
            sign_in(page, KEY)
            wait_ready(page)
            assert text(page, "#total-revenue") == "$5,000.00"
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.click('[data-group-by="landing_page"]')
            page.wait_for_selector('#group-table[data-group="landing_page"]')
            wait_ready(page)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
            # Reloading the tab keeps the session (sessionStorage survives a reload).
            page.reload()
            wait_ready(page)
            assert text(page, "#total-revenue") == "$5,000.00"


def test_dashboard_against_canned_api_explains_rejected_keys(
    canned: tuple[CannedApi, LiveServer],
) -> None:
    api, live = canned
    with chromium() as browser, desktop_context(browser, locale="en-US") as watched:
        page = watched.context.new_page()
        page.goto(f"{live.url}/dashboard")
        sign_in(page, "mk_live_not_a_real_key")
        page.wait_for_selector("#signin-error:not([hidden])")
        assert "401" in text(page, "#signin-error")
        assert page.evaluate("sessionStorage.getItem('metrivo_key')") is None
        assert page.locator("#dashboard").is_hidden()

        sign_in(page, KEY_WITHOUT_REPORTS)
        page.wait_for_selector('#app[data-state="error"]')
        message = text(page, "#status")
        assert "403" in message
        assert "reports:read" in message
        assert page.locator("#signin-error").is_hidden()

        # The browser reports the refused requests themselves; nothing else may fail.
        page.evaluate("0")  # a round trip delivers the console events still in flight
        expected = ("status of 401", "status of 403")
        refused = [e for e in watched.errors if any(s in e for s in expected)]
        watched.errors[:] = [e for e in watched.errors if e not in refused]
    assert [s.path for s in api.seen][:2] == ["/api/websites", "/api/websites"]
