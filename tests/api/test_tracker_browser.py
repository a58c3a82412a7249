"""The tracker in headless Chromium against the real Metrivo app and database."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from attribution.identity import email_hash
from db.models import Identity, Visitor, VisitSession, Website
from db.session import unit_of_work
from tests.api.browser import chromium, desktop_context
from tests.conftest import TEST_SECRET, Builders, LiveServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
<script defer src="{api}/js/metrivo.js" data-key="{key}"></script></head>
<body><h1>Shop</h1>
<button id="spa" onclick="history.pushState({{}}, '', '/app/checkout')">Checkout</button>
</body></html>"""


class SiteServer:
    """The customer's site: any path serves the page embedding the tracker."""

    def __init__(self, api: str, public_key: str) -> None:
        page = PAGE.format(api=api, key=public_key).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def local_site(build: Builders) -> Website:
    return build.website(name="Local shop", domains=("127.0.0.1",))


@pytest.fixture
def site_server(server: LiveServer, local_site: Website) -> Iterator[SiteServer]:
    with SiteServer(server.url, local_site.public_key) as site:
        yield site


def wait_for(sessions: sessionmaker[Session], check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work(sessions) as session:
            if check(session):  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise AssertionError("the expected rows did not appear")


def test_browsing_with_the_tracker_records_the_journey(
    site_server: SiteServer, local_site: Website, sessions: sessionmaker[Session]
) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    with chromium() as browser, desktop_context(browser) as watched:
        page = watched.context.new_page()
        page.goto(
            f"{site_server.url}/landing?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring",
            referer="https://mail.google.com/",
        )
        page.wait_for_function("() => window.Metrivo && window.Metrivo.getVisitorId()")
        visitor = page.evaluate("Metrivo.getVisitorId()")
        session_id = page.evaluate("Metrivo.getSessionId()")
        page.click("#spa")
        page.reload()
        page.wait_for_function("() => window.Metrivo && window.Metrivo.getVisitorId()")
        assert page.evaluate("Metrivo.getVisitorId()") == visitor
        assert page.evaluate("Metrivo.getSessionId()") == session_id
        metadata = page.evaluate("Metrivo.getAttributionMetadata()")
        page.evaluate("([e]) => Metrivo.identify(e, {plan: 'pro'})", [email])
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tracker-e2e.png"))

        def recorded(session: Session) -> bool:
            row = session.get(VisitSession, (local_site.id, uuid.UUID(session_id)))
            identity = session.scalar(select(Identity).where(Identity.website_id == local_site.id))
            return row is not None and row.pageviews >= 3 and identity is not None

        wait_for(sessions, recorded)

    assert metadata["metrivo_visitor_id"] == visitor
    assert metadata["metrivo_session_id"] == session_id
    assert metadata["utm_source"] == "Newsletter"
    assert metadata["landing_url"].endswith(
        "/landing?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring"
    )
    with unit_of_work(sessions) as session:
        row = session.get_one(VisitSession, (local_site.id, uuid.UUID(session_id)))
        assert (row.source, row.medium, row.campaign, row.channel) == (
            "newsletter",
            "email",
            "Spring",
            "Email",
        )
        assert row.landing_path == "/landing"
        assert row.pageviews == 3  # landing, SPA navigation, reload
        assert str(row.visitor_id) == visitor
        assert session.get(Visitor, (local_site.id, uuid.UUID(visitor))) is not None
        identity = session.scalars(
            select(Identity).where(Identity.website_id == local_site.id)
        ).one()
        assert identity.value_hash == email_hash(TEST_SECRET.encode(), email)
        assert str(identity.visitor_id) == visitor
        assert identity.properties == {"plan": "pro"}
