"""POST /api/track through real HTTP: sessions, acquisition, bots, origins, bad input."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Visitor, VisitSession, Website
from db.session import unit_of_work
from tests.conftest import Builders

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def event(site: Website, **fields: Any) -> dict[str, Any]:
    return {
        "publicKey": site.public_key,
        "visitorId": str(uuid.uuid4()),
        "sessionId": str(uuid.uuid4()),
        "type": "pageview",
        "url": "https://shop.example.com/",
        **fields,
    }


def send(http: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    return http.post("/api/track", json=body, headers={"User-Agent": CHROME, **headers})


def load_session(sessions: sessionmaker[Session], site: Website, sid: str) -> VisitSession | None:
    with unit_of_work(sessions) as session:
        return session.get(VisitSession, (site.id, uuid.UUID(sid)))


def test_first_event_fixes_the_acquisition_and_later_ones_extend(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    first = event(
        site,
        url="https://shop.example.com/pricing?utm_source=Newsletter&utm_medium=email"
        "&utm_campaign=Spring",
        referrer="https://mail.google.com/",
    )
    assert send(http, first).status_code == 202
    later = {
        **first,
        "url": "https://shop.example.com/checkout",
        "referrer": "https://www.google.com/",
    }
    assert send(http, later).status_code == 202
    assert send(http, {**later, "type": "event", "name": "signup"}).status_code == 202

    row = load_session(sessions, site, first["sessionId"])
    assert row is not None
    assert (row.source, row.medium, row.campaign, row.channel) == (
        "newsletter",
        "email",
        "Spring",
        "Email",
    )
    assert row.landing_path == "/pricing"
    assert row.landing_url == first["url"]
    assert row.referrer == "https://mail.google.com/"
    assert (row.pageviews, row.events) == (2, 1)
    assert row.last_seen_at >= row.started_at
    assert str(row.visitor_id) == first["visitorId"]
    with unit_of_work(sessions) as session:
        assert session.get(Visitor, (site.id, uuid.UUID(first["visitorId"]))) is not None


@pytest.mark.parametrize(
    ("referrer", "url", "expected"),
    [
        ("https://www.google.com/", "https://shop.example.com/", ("google", "organic")),
        (None, "https://shop.example.com/", ("direct", "none")),
        ("https://chatgpt.com/", "https://shop.example.com/", ("chatgpt", "ai")),
        (None, "https://shop.example.com/?gclid=abc", ("google", "cpc")),
        ("https://news.ycombinator.com/", "https://shop.example.com/x", ("hackernews", "social")),
    ],
)
def test_acquisition_from_referrer_and_url(
    http: httpx.Client,
    site: Website,
    sessions: sessionmaker[Session],
    referrer: str | None,
    url: str,
    expected: tuple[str, str],
) -> None:
    body = event(site, url=url, referrer=referrer)
    assert send(http, body).status_code == 202
    row = load_session(sessions, site, body["sessionId"])
    assert row is not None
    assert (row.source, row.medium) == expected


def test_returning_from_checkout_keeps_the_previous_acquisition(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    visitor = str(uuid.uuid4())
    first = event(
        site,
        visitorId=visitor,
        url="https://shop.example.com/?utm_source=twitter&utm_medium=social&utm_campaign=launch",
    )
    assert send(http, first).status_code == 202
    back = event(
        site,
        visitorId=visitor,
        url="https://shop.example.com/thanks",
        referrer="https://checkout.stripe.com/c/pay/cs_live_123",
    )
    assert send(http, back).status_code == 202
    row = load_session(sessions, site, back["sessionId"])
    assert row is not None
    assert (row.source, row.medium, row.campaign) == ("twitter", "social", "launch")

    own = event(site, url="https://shop.example.com/", referrer="https://blog.shop.example.com/p")
    assert send(http, own).status_code == 202
    row = load_session(sessions, site, own["sessionId"])
    assert row is not None
    assert (row.source, row.medium) == ("direct", "none")


def test_bots_and_ignored_visits_are_not_recorded(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    bot = event(site)
    response = send(http, bot, **{"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"})
    assert response.status_code == 202
    assert response.json() == {"success": True, "ignored": "bot"}
    ignored = event(site, url="https://shop.example.com/?metrivo_ignore=true")
    assert send(http, ignored).json() == {"success": True, "ignored": "metrivo_ignore"}
    assert load_session(sessions, site, bot["sessionId"]) is None
    assert load_session(sessions, site, ignored["sessionId"]) is None


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://shop.example.com", 202),
        ("https://www.shop.example.com", 202),
        ("https://evil.example.net", 403),
        ("https://shop.example.com.evil.net", 403),
        ("null", 403),
    ],
)
def test_origins_outside_the_websites_domains_are_refused(
    http: httpx.Client, site: Website, origin: str, status: int
) -> None:
    response = send(http, event(site), Origin=origin)
    assert response.status_code == status
    if status == 202:
        assert response.headers["access-control-allow-origin"] == origin
    else:
        assert response.json()["error"]["code"] == "forbidden_origin"


def test_cors_preflight(http: httpx.Client) -> None:
    response = http.options(
        "/api/track",
        headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]


def test_sendbeacon_text_plain_bodies_are_accepted(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    import json

    body = event(site)
    response = http.post(
        "/api/track",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain;charset=UTF-8", "User-Agent": CHROME},
    )
    assert response.status_code == 202
    assert load_session(sessions, site, body["sessionId"]) is not None


def test_unknown_public_key_is_401(http: httpx.Client, site: Website) -> None:
    response = send(http, event(site, publicKey="pk_unknown"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"visitorId": "nope"}, "visitorId"),
        ({"sessionId": None}, "sessionId"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"type": "click"}, "type"),
        ({"type": "event"}, "name"),
        ({"properties": [1]}, "properties"),
        ({"publicKey": None}, "publicKey"),
    ],
)
def test_bad_input_names_the_field(
    http: httpx.Client, site: Website, fields: dict[str, Any], field: str
) -> None:
    response = send(http, event(site, **fields))
    assert response.status_code == 400, response.text
    assert field in {d["field"] for d in response.json()["error"]["details"]}


def test_invalid_json_and_oversized_bodies(http: httpx.Client) -> None:
    assert http.post("/api/track", content=b"{nope").status_code == 400
    big = b'{"url": "' + b"a" * 70_000 + b'"}'
    assert http.post("/api/track", content=big).status_code == 413


def test_concurrent_pageviews_of_one_session_make_one_session(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    body = event(site, url="https://shop.example.com/?utm_source=zeta")
    with ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(lambda _: send(http, body).status_code, range(50)))
    assert set(codes) == {202}
    with unit_of_work(sessions) as session:
        count = session.scalar(
            select(func.count())
            .select_from(VisitSession)
            .where(
                VisitSession.website_id == site.id,
                VisitSession.id == uuid.UUID(body["sessionId"]),
            )
        )
    row = load_session(sessions, site, body["sessionId"])
    assert count == 1
    assert row is not None
    assert row.pageviews == 50
    assert row.source == "zeta"


def test_the_tracker_script_is_served_with_caching_headers(http: httpx.Client) -> None:
    response = http.get("/js/metrivo.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    assert http.get("/js/metrivo.js", headers={"If-None-Match": etag}).status_code == 304


def test_other_websites_sessions_are_separate(
    http: httpx.Client, build: Builders, sessions: sessionmaker[Session]
) -> None:
    a, b = build.website(name="a"), build.website(name="b")
    shared_session = str(uuid.uuid4())
    send(http, event(a, sessionId=shared_session, url="https://shop.example.com/?utm_source=a"))
    send(http, event(b, sessionId=shared_session, url="https://shop.example.com/?utm_source=b"))
    row_a = load_session(sessions, a, shared_session)
    row_b = load_session(sessions, b, shared_session)
    assert row_a is not None
    assert row_b is not None
    assert (row_a.source, row_b.source) == ("a", "b")
