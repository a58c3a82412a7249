"""Revenue reports through HTTP, checked against sums computed here from the rows made."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from db.models import Payment, Website
from db.repositories import reports
from db.repositories.visit_links import link_waiting
from db.session import unit_of_work
from tests.api.test_track import CHROME
from tests.conftest import Builders, bearer, unique

TODAY = datetime.now(UTC).date()
FIRST = TODAY - timedelta(days=9)


@dataclass
class Made:
    amount: Decimal
    currency: str
    status: str
    source: str | None
    paid_at: datetime
    visitor: str | None
    campaign: str | None = None
    confidence: str = "high"


def at(day: date, clock: time = time(12)) -> datetime:
    return datetime.combine(day, clock, UTC)


class Shop:
    """A website with payments made through the API and attribution written directly."""

    def __init__(
        self,
        http: httpx.Client,
        build: Builders,
        sessions: sessionmaker[Session],
        site: Website | None = None,
    ) -> None:
        self.http, self.sessions = http, sessions
        self.site = site or build.website()
        self.key = build.key(websites_=(self.site,), scopes=("payments:write", "reports:read"))
        self.made: list[Made] = []

    def pay(self, made: Made) -> None:
        ppid = unique()
        response = self.http.post(
            "/api/payments/manual",
            headers=bearer(self.key),
            json={
                "website_id": str(self.site.id),
                "amount": float(made.amount),
                "currency": made.currency,
                "provider_payment_id": ppid,
                "paid_at": made.paid_at.isoformat(),
                "customer_email": f"{ppid}@example.com",
            },
        )
        assert response.status_code == 200, response.text
        if made.status != "paid":
            self.http.post(
                "/api/payments/manual",
                headers=bearer(self.key),
                json={
                    "website_id": str(self.site.id),
                    "amount": float(made.amount),
                    "currency": made.currency,
                    "provider_payment_id": ppid,
                    "status": made.status,
                },
            )
        with unit_of_work(self.sessions) as session:
            session.execute(
                update(Payment)
                .where(Payment.id == uuid.UUID(response.json()["payment"]["id"]))
                .values(
                    attribution_status="attributed",
                    attribution_confidence=made.confidence if made.source else "unknown",
                    attributed_source=made.source,
                    attributed_medium="organic" if made.source else None,
                    attributed_campaign=made.campaign,
                    matched_visitor_id=uuid.UUID(made.visitor) if made.visitor else None,
                )
            )
        self.made.append(made)

    def visit(self, source: str, visitor: str | None = None) -> str:
        visitor = visitor or str(uuid.uuid4())
        response = self.http.post(
            "/api/track",
            headers={"User-Agent": CHROME},
            json={
                "publicKey": self.site.public_key,
                "visitorId": visitor,
                "sessionId": str(uuid.uuid4()),
                "url": f"https://shop.example.com/?utm_source={source}&utm_campaign=c-{source}",
            },
        )
        assert response.status_code == 202
        return visitor

    def report(self, **params: str) -> dict[str, Any]:
        response = self.http.get(
            "/api/reports/revenue",
            headers=bearer(self.key),
            params={
                "website_id": str(self.site.id),
                "from": FIRST.isoformat(),
                "to": TODAY.isoformat(),
                **params,
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def expected(made: list[Made], key: str) -> dict[tuple[str | None, bool], dict[str, Decimal]]:
    """Net revenue per (group key, unattributed) per currency, computed independently."""
    sums: dict[tuple[str | None, bool], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for m in made:
        if not (FIRST <= m.paid_at.date() <= TODAY) or m.status in (
            "failed",
            "pending",
            "canceled",
        ):
            continue
        net = Decimal(0) if m.status == "refunded" else m.amount
        group = getattr(m, key) if m.source else None
        sums[(group, m.source is None)][m.currency] += net
    return sums


def as_decimals(revenue: dict[str, Any]) -> dict[str, Decimal]:
    return {c: Decimal(str(v)) for c, v in revenue.items()}


@pytest.fixture
def shop(http: httpx.Client, build: Builders, sessions: sessionmaker[Session]) -> Shop:
    shop = Shop(http, build, sessions)
    g1, g2, g3 = shop.visit("google"), shop.visit("google"), shop.visit("google")
    fb = shop.visit("facebook")
    for made in [
        Made(Decimal("49.99"), "USD", "paid", "google", at(FIRST, time(0)), g1, "c-google"),
        Made(Decimal("49.99"), "USD", "refunded", "google", at(TODAY - timedelta(days=3)), g2),
        Made(Decimal("120"), "EUR", "paid", "google", at(TODAY - timedelta(days=2)), g1),
        Made(
            Decimal("10.5"),
            "EUR",
            "paid",
            "facebook",
            at(TODAY - timedelta(days=1)),
            fb,
            "c-facebook",
            "medium",
        ),
        Made(Decimal("5"), "USD", "paid", None, at(TODAY - timedelta(days=4)), None),
        Made(Decimal("7.25"), "USD", "partially_refunded", None, at(TODAY), None),
        Made(Decimal("99"), "USD", "failed", "google", at(TODAY), g3),
        Made(
            Decimal("1000"),
            "USD",
            "paid",
            "google",
            at(FIRST - timedelta(days=1), time(23, 59, 59)),
            g3,
        ),
        Made(Decimal("33.33"), "USD", "paid", "google", at(TODAY, time(23, 59, 59)), g3),
    ]:
        shop.pay(made)
    return shop


def test_revenue_by_source_matches_independent_sums(shop: Shop) -> None:
    body = shop.report(group_by="source")
    want = expected(shop.made, "source")
    got = {
        (r["key"], r["unattributed"]): as_decimals(r["revenue"])
        for r in body["rows"]
        if r["payments"]
    }
    assert got == {k: dict(v) for k, v in want.items()}
    assert body["currencies"] == ["EUR", "USD"]
    # The unattributed row comes last, and is separate from the rest.
    assert body["rows"][-1]["unattributed"] is True
    assert body["rows"][-1]["key"] is None

    google = next(r for r in body["rows"] if r["key"] == "google")
    assert google["payments"] == 4  # received in range: paid, refunded, paid, paid at the edge
    assert google["refunds"] == 1
    assert as_decimals(google["gross"]) == {"USD": Decimal("133.31"), "EUR": Decimal("120")}
    assert as_decimals(google["refunded"]) == {"USD": Decimal("49.99")}
    assert google["paying_visitors"] == 2  # g1 twice and g3; g2 was refunded
    assert google["visitors"] == 3
    assert google["conversion_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert as_decimals(google["revenue_per_visitor"]) == {
        "USD": Decimal("27.77"),
        "EUR": Decimal("40.00"),
    }


def test_totals(shop: Shop) -> None:
    totals = shop.report(group_by="source")["totals"]
    want: dict[str, Decimal] = defaultdict(Decimal)
    for per_currency in expected(shop.made, "source").values():
        for currency, value in per_currency.items():
            want[currency] += value
    assert as_decimals(totals["revenue"]) == want
    assert totals["visitors"] == 4
    assert totals["payments"] == 7


def test_date_boundaries_are_inclusive_days(shop: Shop) -> None:
    days = shop.report(group_by="day")["rows"]
    assert [r["key"] for r in days] == [(FIRST + timedelta(days=i)).isoformat() for i in range(10)]
    assert as_decimals(days[0]["revenue"]) == {"USD": Decimal("49.99")}  # 00:00:00 of `from`
    assert as_decimals(days[-1]["revenue"]) == {"USD": Decimal("40.58")}  # up to 23:59:59
    assert sum(r["payments"] for r in days) == 7
    assert days[-1]["visitors"] == 4  # every visit happened today


def test_other_groupings(shop: Shop) -> None:
    by_campaign = {
        (r["key"], r["unattributed"]): as_decimals(r["revenue"])
        for r in shop.report(group_by="campaign")["rows"]
        if r["payments"]
    }
    assert by_campaign == {k: dict(v) for k, v in expected(shop.made, "campaign").items()}
    confidence = {r["key"]: r for r in shop.report(group_by="confidence")["rows"]}
    assert set(confidence) == {"high", "medium", "unknown"}
    assert confidence["medium"]["visitors"] is None
    assert as_decimals(confidence["medium"]["revenue"]) == {"EUR": Decimal("10.5")}
    filtered = shop.report(group_by="source", source="facebook")
    assert [r["key"] for r in filtered["rows"] if r["payments"]] == ["facebook"]
    assert filtered["totals"]["visitors"] == 1


@pytest.mark.parametrize("linked", [False, True])
def test_visitor_counts_are_the_same_however_they_are_counted(
    shop: Shop, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, linked: bool
) -> None:
    """Linked sessions, waiting ones, or a DISTINCT over all (the linker far behind)."""
    if linked:
        link_waiting(sessions)
    counted = {g: shop.report(group_by=g) for g in ("source", "campaign", "day")}
    monkeypatch.setattr(reports, "MAX_UNLINKED", -1)
    for group_by, body in counted.items():
        distinct = shop.report(group_by=group_by)
        assert [(r["key"], r["visitors"]) for r in body["rows"]] == [
            (r["key"], r["visitors"]) for r in distinct["rows"]
        ]
        assert body["totals"]["visitors"] == distinct["totals"]["visitors"] == 4
    google = next(r for r in counted["source"]["rows"] if r["key"] == "google")
    assert google["visitors"] == 3


def test_csv_has_the_same_numbers(shop: Shop) -> None:
    response = shop.http.get(
        "/api/reports/revenue",
        headers=bearer(shop.key),
        params={
            "website_id": str(shop.site.id),
            "from": FIRST.isoformat(),
            "to": TODAY.isoformat(),
            "group_by": "source",
            "format": "csv",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    google_usd = next(r for r in rows if r["source"] == "google" and r["currency"] == "USD")
    assert Decimal(google_usd["revenue"]) == Decimal("83.32")
    total_eur = next(r for r in rows if r["source"] == "TOTAL" and r["currency"] == "EUR")
    assert Decimal(total_eur["revenue"]) == Decimal("130.5")


def test_other_websites_data_is_never_visible(
    shop: Shop, http: httpx.Client, build: Builders, sessions: sessionmaker[Session]
) -> None:
    other = Shop(http, build, sessions)
    other.visit("google")
    other.pay(Made(Decimal("777"), "USD", "paid", "google", at(TODAY), None))
    google = next(r for r in shop.report(group_by="source")["rows"] if r["key"] == "google")
    assert "777" not in str(google["revenue"])
    assert google["visitors"] == 3
    response = http.get(
        "/api/reports/revenue", headers=bearer(other.key), params={"website_id": str(shop.site.id)}
    )
    assert response.status_code == 403


def test_website_timezone_decides_the_day(
    http: httpx.Client, build: Builders, sessions: sessionmaker[Session], backend: str
) -> None:
    shop = Shop(http, build, sessions)
    with unit_of_work(sessions) as session:
        session.execute(
            update(Website).where(Website.id == shop.site.id).values(timezone="America/New_York")
        )
    # 02:00 UTC is the evening before in New York.
    shop.pay(
        Made(Decimal("8"), "USD", "paid", "google", at(TODAY - timedelta(days=1), time(2)), None)
    )
    days = {r["key"]: r for r in shop.report(group_by="day")["rows"]}
    evening = (TODAY - timedelta(days=2)).isoformat()
    assert as_decimals(days[evening]["revenue"]) == {"USD": Decimal("8")}


def test_needs_reports_read_for_that_website(
    http: httpx.Client, build: Builders, site: Website, secret: str
) -> None:
    params = {"website_id": str(site.id)}
    assert http.get("/api/reports/revenue", params=params).status_code == 401
    assert (
        http.get("/api/reports/revenue", params=params, headers=bearer(secret)).status_code == 403
    )
    assert (
        http.get("/api/reports/payments", params=params, headers=bearer(secret)).status_code == 403
    )
    reader = build.key(websites_=(site,), scopes=("reports:read",))
    ok = http.get("/api/reports/revenue", params=params, headers=bearer(reader))
    assert ok.status_code == 200
    assert ok.json()["to"] == TODAY.isoformat()
    assert ok.json()["from"] == (TODAY - timedelta(days=29)).isoformat()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"confidence": "sure"}, "confidence"),
        ({"format": "xml"}, "format"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "from"),
    ],
)
def test_bad_parameters_are_400(
    http: httpx.Client, build: Builders, site: Website, params: dict[str, str], field: str
) -> None:
    reader = build.key(websites_=(site,), scopes=("reports:read",))
    response = http.get(
        "/api/reports/revenue",
        headers=bearer(reader),
        params={"website_id": str(site.id), **params},
    )
    assert response.status_code == 400
    assert field in {d["field"] for d in response.json()["error"]["details"]}


def test_recent_payments_show_their_evidence(shop: Shop) -> None:
    response = shop.http.get(
        "/api/reports/payments",
        headers=bearer(shop.key),
        params={"website_id": str(shop.site.id), "limit": "3"},
    )
    assert response.status_code == 200
    payments = response.json()["payments"]
    assert len(payments) == 3
    assert {"evidence", "attribution_confidence", "attributed_source"} <= set(payments[0])


def test_websites_of_the_key(http: httpx.Client, build: Builders, site: Website) -> None:
    reader = build.key(websites_=(site,), scopes=("reports:read",))
    listed = http.get("/api/websites", headers=bearer(reader)).json()["websites"]
    assert [w["id"] for w in listed] == [str(site.id)]
    assert set(listed[0]) == {"id", "name", "domains", "timezone"}
