"""The browser tracker (api/static/metrivo.js) in real Chromium against a fake collector.

Two local servers stand in for the outside world: `site` serves the customer's pages, and
`collector` serves the script and records what it posts, so every request is cross-origin
as in production (CORS preflight included). No database and no Metrivo app are involved.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.api.browser import WatchedContext, chromium, desktop_context

ROOT = Path(__file__).resolve().parents[2]
TRACKER = ROOT / "api" / "static" / "metrivo.js"
ARTIFACTS = ROOT / "test-artifacts"
TRACK, IDENTIFY = "/api/track", "/api/identify"
UTM_QUERY = "?utm_source=Newsletter&utm_medium=email&utm_campaign=spring"
YEAR_MS = 365 * 24 * 3600 * 1000
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

# Records, in the page, every call the tracker makes to fetch or sendBeacon: it is
# synchronous, so "nothing was sent" can be asserted without waiting.
SPY = """
window.__sent = [];
for (const [target, name] of [[window, "fetch"], [navigator, "sendBeacon"]]) {
  const original = target[name];
  if (typeof original !== "function") continue;
  target[name] = function (url, ...rest) {
    window.__sent.push(name + " " + url);
    return original.call(this, url, ...rest);
  };
}
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Acme</title><link rel="icon" href="data:,">
{head}</head>
<body><h1>Acme analytics test page</h1>
<button id="pricing" onclick="history.pushState({{}}, '', '/app/pricing?plan=pro')">Pricing</button>
<a id="other" href="/other">Another page</a></body></html>
"""
QUEUE = """<script>
window.Metrivo = window.Metrivo || [];
Metrivo.push(["identify", "early@example.com", {"source": "queue"}]);
Metrivo.push(["track", "early_event"]);
</script>"""


@dataclass(frozen=True)
class Received:
    route: str
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", content_type: str = "") -> None:
        self.send_response(status)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/js/metrivo.js":
            self._answer(200, TRACKER.read_bytes(), "text/javascript; charset=utf-8")
        elif path == "/favicon.ico":
            self._answer(204)
        else:
            html = PAGE.format(head=self.server.fake.head(path)).encode()
            self._answer(200, html, "text/html; charset=utf-8")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path not in (TRACK, IDENTIFY):
            self._answer(404)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.fake.record(Received(self.path, json.loads(raw), headers))
        self._answer(202, b'{"success": true}', "application/json")


class _Server(ThreadingHTTPServer):
    fake: FakeOrigin


class FakeOrigin:
    """An HTTP origin on 127.0.0.1: the tracker, test pages, and a recording collector.

    Pages load the tracker from `script_origin` (the collector), except /override, which
    loads it from this origin and points `data-api` at the collector.
    """

    def __init__(self, script_origin: str | None = None) -> None:
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.fake = self
        self.origin = f"http://127.0.0.1:{self._server.server_port}"
        self.script_origin = script_origin or self.origin
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def head(self, path: str) -> str:
        tag = '<script defer src="{}/js/metrivo.js" data-key="pk_test"{}></script>'
        if path == "/override":
            return tag.format(self.origin, f' data-api="{self.script_origin}/"')
        script = tag.format(self.script_origin, "")
        return QUEUE + script if path == "/queued" else script

    def record(self, received: Received) -> None:
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()

    def bodies(self, route: str) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.route == route]

    def wait_for(self, route: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests to `route`, waiting until they have arrived."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: sum(r.route == route for r in self.received) >= count, timeout
            )
            got = [r for r in self.received if r.route == route]
        assert len(got) >= count, f"expected {count} POST {route}, got {got}"
        return got[:count]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def collector() -> Iterator[FakeOrigin]:
    server = FakeOrigin()
    yield server
    server.close()


@pytest.fixture
def site(collector: FakeOrigin) -> Iterator[FakeOrigin]:
    server = FakeOrigin(script_origin=collector.origin)
    yield server
    server.close()


@pytest.fixture
def watched(browser: Browser) -> Iterator[WatchedContext]:
    with desktop_context(browser) as context:
        context.context.add_init_script(SPY)
        yield context


@pytest.fixture
def open_page(watched: WatchedContext) -> Callable[..., Page]:
    def open_page(url: str, **goto: Any) -> Page:
        page = watched.context.new_page()
        page.goto(url, **goto)
        return page

    return open_page


def is_uuid4(value: object) -> bool:
    """A canonical (lower-case, hyphenated) random UUID."""
    return isinstance(value, str) and UUID4.fullmatch(value) is not None


def only(received: list[Received], **fields: Any) -> dict[str, Any]:
    """The one body among `received` with these field values (requests may arrive in any order)."""
    [body] = [r.body for r in received if all(r.body.get(k) == v for k, v in fields.items())]
    return body


def sent(page: Page) -> list[str]:
    return list(page.evaluate("window.__sent"))


def local(page: Page, key: str) -> Any:
    return page.evaluate("k => JSON.parse(localStorage.getItem(k))", key)


def test_landing_sends_one_pageview_with_ids_and_full_url(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin, watched: WatchedContext
) -> None:
    url = site.origin + "/landing" + UTM_QUERY
    page = open_page(url)

    [pageview] = collector.wait_for(TRACK, 1)
    body = pageview.body
    assert set(body) == {"publicKey", "visitorId", "sessionId", "type", "url", "referrer"}
    assert body["publicKey"] == "pk_test"
    assert body["type"] == "pageview"
    assert body["url"] == url
    assert body["referrer"] is None
    assert is_uuid4(body["visitorId"])
    assert is_uuid4(body["sessionId"])
    assert body["visitorId"] != body["sessionId"]
    assert sent(page) == [f"fetch {collector.origin}{TRACK}"]
    assert pageview.headers["origin"] == site.origin
    assert pageview.headers["content-type"] == "application/json"
    assert "cookie" not in pageview.headers  # credentials: "omit"
    assert "Headless" not in pageview.headers["user-agent"]

    now_ms = time.time() * 1000
    stored_visitor = local(page, "metrivo_vid")
    assert stored_visitor["id"] == body["visitorId"]
    assert abs(stored_visitor["exp"] - (now_ms + YEAR_MS)) < 60_000
    [cookie] = [c for c in watched.context.cookies(site.origin) if c["name"] == "metrivo_vid"]
    assert cookie["value"] == body["visitorId"]
    assert cookie["path"] == "/"
    assert cookie["sameSite"] == "Lax"
    assert abs(cookie["expires"] * 1000 - (now_ms + YEAR_MS)) < 60_000
    stored_session = local(page, "metrivo_sid")
    assert stored_session["id"] == body["sessionId"]
    assert abs(stored_session["last"] - now_ms) < 60_000

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "tracker.png")


def test_spa_navigation_sends_pageviews_with_the_same_ids(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    landing = site.origin + "/landing" + UTM_QUERY
    page = open_page(landing)
    collector.wait_for(TRACK, 1)

    page.click("#pricing")
    first, second = (r.body for r in collector.wait_for(TRACK, 2))
    assert second["type"] == "pageview"
    assert second["url"] == site.origin + "/app/pricing?plan=pro"
    assert second["referrer"] == landing
    assert (second["visitorId"], second["sessionId"]) == (first["visitorId"], first["sessionId"])

    page.evaluate("history.back()")  # popstate
    third = collector.wait_for(TRACK, 3)[2].body
    assert third["url"] == landing
    assert third["referrer"] == site.origin + "/app/pricing?plan=pro"
    assert third["sessionId"] == first["sessionId"]

    # Same path and query: a replaceState, a fragment change, a pushState to a fragment.
    page.evaluate(
        "history.replaceState({}, '', location.href); location.hash = 'faq';"
        "history.pushState({}, '', '#plans')"
    )
    assert len(sent(page)) == 3


def test_reload_and_other_tabs_keep_visitor_and_session(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing" + UTM_QUERY)
    collector.wait_for(TRACK, 1)
    page.reload()
    open_page(site.origin + "/other")

    first, reloaded, other_tab = (r.body for r in collector.wait_for(TRACK, 3))
    for later in (reloaded, other_tab):
        assert (later["visitorId"], later["sessionId"]) == (first["visitorId"], first["sessionId"])
    assert page.evaluate("Metrivo.getVisitorId()") == first["visitorId"]
    assert page.evaluate("Metrivo.getSessionId()") == first["sessionId"]


def test_identify_posts_email_or_user_id(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing")
    visitor_id = collector.wait_for(TRACK, 1)[0].body["visitorId"]

    page.evaluate("Metrivo.identify('user@example.com', {plan: 'pro'})")
    page.evaluate("Metrivo.identify(' cust_42 ')")
    identifies = collector.wait_for(IDENTIFY, 2)
    assert only(identifies, email="user@example.com") == {
        "publicKey": "pk_test",
        "visitorId": visitor_id,
        "email": "user@example.com",
        "properties": {"plan": "pro"},
    }
    assert {r.headers["origin"] for r in identifies} == {site.origin}
    assert only(identifies, userId="cust_42") == {
        "publicKey": "pk_test",
        "visitorId": visitor_id,
        "userId": "cust_42",
    }


def test_track_sends_an_event_in_the_session(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing")
    collector.wait_for(TRACK, 1)

    page.evaluate("Metrivo.track('signup', {plan: 'pro', seats: 3})")
    pageview, event = (r.body for r in collector.wait_for(TRACK, 2))
    assert event == {
        "publicKey": "pk_test",
        "visitorId": pageview["visitorId"],
        "sessionId": pageview["sessionId"],
        "type": "event",
        "url": site.origin + "/landing",
        "referrer": None,
        "name": "signup",
        "properties": {"plan": "pro", "seats": 3},
    }


def test_attribution_metadata_is_the_first_page_of_the_session(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    landing = site.origin + "/landing" + UTM_QUERY
    page = open_page(landing, referer="https://news.example.com/post")
    page.click("#pricing")
    page.goto(site.origin + "/other")

    pageviews = collector.wait_for(TRACK, 3)
    first = only(pageviews, url=landing)
    assert first["referrer"] == "https://news.example.com/post"
    assert only(pageviews, url=site.origin + "/other")["sessionId"] == first["sessionId"]
    assert page.evaluate("Metrivo.getAttributionMetadata()") == {
        "metrivo_visitor_id": first["visitorId"],
        "metrivo_session_id": first["sessionId"],
        "landing_url": landing,
        "referrer": "https://news.example.com/post",
        "utm_source": "Newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring",
    }


def test_session_renews_after_thirty_idle_minutes(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing" + UTM_QUERY)
    first = collector.wait_for(TRACK, 1)[0].body
    idle = (
        "m => { const s = JSON.parse(localStorage.metrivo_sid);"
        " s.last = Date.now() - m * 60000; localStorage.metrivo_sid = JSON.stringify(s); }"
    )

    page.evaluate(idle, 29)
    assert page.evaluate("Metrivo.getSessionId()") == first["sessionId"]

    page.evaluate(idle, 31)
    page.evaluate("history.pushState({}, '', '/app/settings')")  # no longer the landing page
    renewed = page.evaluate("Metrivo.getSessionId()")
    assert is_uuid4(renewed)
    assert renewed != first["sessionId"]
    assert page.evaluate("Metrivo.getVisitorId()") == first["visitorId"]
    metadata = page.evaluate("Metrivo.getAttributionMetadata()")
    assert metadata["metrivo_session_id"] == renewed
    assert metadata["landing_url"] == site.origin + "/app/settings"
    assert "utm_source" not in metadata

    page.evaluate("Metrivo.track('after_break')")
    assert only(collector.wait_for(TRACK, 3), name="after_break")["sessionId"] == renewed


def test_metrivo_ignore_sends_nothing_until_cleared(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing?metrivo_ignore=true")
    page.evaluate("Metrivo.track('owner_click'); Metrivo.identify('owner@example.com')")
    assert sent(page) == []
    assert page.evaluate("localStorage.getItem('metrivo_ignore')") == "1"

    page.goto(site.origin + "/other")  # remembered on later pages
    page.click("#pricing")
    assert sent(page) == []
    assert local(page, "metrivo_sid") is None  # no session started either

    page.goto(site.origin + "/landing?metrivo_ignore=false")
    assert page.evaluate("localStorage.getItem('metrivo_ignore')") is None
    [pageview] = collector.wait_for(TRACK, 1)
    assert pageview.body["url"] == site.origin + "/landing?metrivo_ignore=false"
    assert sent(page) == [f"fetch {collector.origin}{TRACK}"]
    assert len(collector.received) == 1  # the spy saw no send on the ignored pages


def test_odd_arguments_throw_nothing_into_the_page(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/landing")
    page.evaluate(
        """() => {
          const M = window.Metrivo, loop = {};
          loop.self = loop;
          M.identify(); M.identify(null); M.identify({}); M.identify("   "); M.identify(42);
          M.identify("a@example.com", [1, 2]);
          M.track(null); M.track(); M.track(""); M.track({}); M.track("loop", loop);
          M.track("ok", "not an object");
          M.push(["no_such_method"]); M.push(null); M.push();
          M.getAttributionMetadata.call(null); M.getSessionId.apply(undefined, [1, 2]);
        }"""
    )
    assert len(sent(page)) == 4  # pageview, two identifies, one event
    identifies = collector.wait_for(IDENTIFY, 2)
    assert "properties" not in only(identifies, userId="42")
    assert "properties" not in only(identifies, email="a@example.com")
    assert "properties" not in only(collector.wait_for(TRACK, 2), type="event", name="ok")


def test_calls_queued_before_load_are_replayed(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/queued")
    page.evaluate("Metrivo.push(['track', 'late_event'])")

    [identify] = collector.wait_for(IDENTIFY, 1)
    assert identify.body["email"] == "early@example.com"
    assert identify.body["properties"] == {"source": "queue"}
    names = {r.body.get("name") for r in collector.wait_for(TRACK, 3)}
    assert names == {None, "early_event", "late_event"}


def test_data_api_overrides_the_collector(
    open_page: Callable[..., Page], site: FakeOrigin, collector: FakeOrigin
) -> None:
    page = open_page(site.origin + "/override")
    [pageview] = collector.wait_for(TRACK, 1)
    assert pageview.body["url"] == site.origin + "/override"
    assert sent(page) == [f"fetch {collector.origin}{TRACK}"]
    assert site.received == []


@pytest.mark.parametrize(
    ("init_script", "is_missing"),
    [
        pytest.param(
            "delete Crypto.prototype.randomUUID",
            "!('randomUUID' in crypto)",
            id="crypto.randomUUID",
        ),
        pytest.param("window.fetch = undefined", "window.fetch === undefined", id="fetch"),
        pytest.param(
            "Object.defineProperty(window, 'localStorage', {get() {"
            " throw new DOMException('The operation is insecure.', 'SecurityError'); }})",
            "(() => { try { return !localStorage } catch (e) { return true } })()",
            id="localStorage",
        ),
    ],
)
def test_falls_back_when_a_browser_feature_is_missing(
    init_script: str,
    is_missing: str,
    watched: WatchedContext,
    open_page: Callable[..., Page],
    site: FakeOrigin,
    collector: FakeOrigin,
) -> None:
    watched.context.add_init_script(init_script)  # runs after SPY
    page = open_page(site.origin + "/landing" + UTM_QUERY)
    assert page.evaluate(is_missing) is True
    first = collector.wait_for(TRACK, 1)[0]
    page.reload()
    second = collector.wait_for(TRACK, 2)[1]

    assert is_uuid4(first.body["visitorId"])
    assert is_uuid4(first.body["sessionId"])
    assert (second.body["visitorId"], second.body["sessionId"]) == (
        first.body["visitorId"],
        first.body["sessionId"],
    )
    metadata = page.evaluate("Metrivo.getAttributionMetadata()")
    assert metadata["metrivo_session_id"] == first.body["sessionId"]
    assert metadata["utm_campaign"] == "spring"
    via_beacon = init_script.startswith("window.fetch")
    assert first.headers["content-type"] == ("text/plain" if via_beacon else "application/json")
    assert sent(page) == [f"{'sendBeacon' if via_beacon else 'fetch'} {collector.origin}{TRACK}"]


def test_tracker_is_small() -> None:
    source = TRACKER.read_bytes()
    size = len(gzip.compress(source, 9))
    print(f"metrivo.js: {len(source)} bytes, {size} bytes gzipped")
    assert size < 3072, f"metrivo.js is {size} bytes gzipped; keep it under 3 KB"
