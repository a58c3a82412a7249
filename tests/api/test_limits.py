"""Hostile input and abuse through real HTTP: input limits (a 4xx naming the field, never
a 5xx), keys stored only as hashes, no key or email in the logs, CORS only on the
browser endpoints, and the 5xx the fuzzing found in files owned elsewhere."""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, text

from api.schemas import MAX_DOCUMENT_BYTES
from db.models import Website
from tests.conftest import Builders, bearer, unique

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
POSTGRES = bool(os.environ.get("DATABASE_URL"))


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep (itself included)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def payment(site: Website, **fields: Any) -> dict[str, Any]:
    return {
        "website_id": str(site.id),
        "amount": 49,
        "currency": "USD",
        "provider_payment_id": unique(),
        **fields,
    }


def pageview(site: Website, **fields: Any) -> dict[str, Any]:
    return {
        "publicKey": site.public_key,
        "visitorId": str(uuid.uuid4()),
        "sessionId": str(uuid.uuid4()),
        "type": "pageview",
        "url": "https://shop.example.com/",
        **fields,
    }


def assert_400_naming(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    details = {d["field"]: d["message"] for d in response.json()["error"]["details"]}
    assert field in details, details
    return details[field]


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"metadata": {"blob": "x" * MAX_DOCUMENT_BYTES}}, "metadata", "16384 bytes"),
        ({"metadata": nested(6)}, "metadata", "5 levels"),
        ({"metadata": {"list": [[[[[1]]]]]}}, "metadata", "5 levels"),
        ({"metadata": {"n": float("nan")}}, "metadata", "finite"),
        ({"metadata": {"n": float("inf")}}, "metadata", "finite"),
        ({"metadata": {"n": 2**64}}, "metadata", "2^63"),
        ({"metadata": {"plan": "pro\x00"}}, "metadata", "NUL"),
        ({"metadata": {"pl\x00an": "pro"}}, "metadata", "NUL"),
        ({"provider_payment_id": "pay_\x00"}, "provider_payment_id", "NUL"),
        ({"provider_payment_id": "p" * 256}, "provider_payment_id", "255"),
        ({"provider": "stripe\x00"}, "provider", "NUL"),
        ({"provider": "p" * 65}, "provider", "64"),
        ({"amount": 10**12}, "amount", "less than"),
        ({"amount": 1e20}, "amount", "less than"),
        ({"amount": -1}, "amount", "greater than or equal"),
        ({"amount": 0.1234567890123}, "amount", "decimal places"),
        ({"amount": 1e-13}, "amount", "decimal places"),
        ({"paid_at": "0001-01-01T00:00:00+05:00"}, "paid_at", "after 2000-01-01"),
        ({"paid_at": "9999-12-31T23:59:59-05:00"}, "paid_at", "after 2000-01-01"),
    ],
)
def test_payment_input_over_a_limit_is_400_naming_the_field(
    http: httpx.Client, site: Website, secret: str, fields: dict[str, Any], field: str, says: str
) -> None:
    # Python's encoder, as a client might use it: NaN and Infinity literals, any integer.
    response = http.post(
        "/api/payments/manual",
        content=json.dumps(payment(site, **fields)),
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert says in assert_400_naming(response, field)


def test_payment_input_at_the_limits_is_accepted_and_stored_exactly(
    http: httpx.Client, site: Website, secret: str
) -> None:
    metadata = {"deep": nested(4), "blob": "x" * (MAX_DOCUMENT_BYTES - 100), "n": 2**63 - 1}
    response = http.post(
        "/api/payments/manual",
        json=payment(site, amount=999_999_999_999.99, metadata=metadata),
        headers=bearer(secret),
    )
    assert response.status_code == 200, response.text
    assert response.content.count(b"999999999999.99") == 1
    small = http.post(
        "/api/payments/manual", json=payment(site, amount=1e-12), headers=bearer(secret)
    )
    assert small.status_code == 200, small.text
    assert small.json()["payment"]["amount"] == 1e-12


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "https://shop.example.com/\x00"}, "url"),
        ({"url": "https://shop.example.com/" + "a" * 4096}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"referrer": "https://www.google.com/\x00"}, "referrer"),
        ({"type": "event", "name": "signup\x00"}, "name"),
        ({"type": "event", "name": "n" * 201}, "name"),
        ({"publicKey": "pk_\x00"}, "publicKey"),
        ({"properties": nested(6)}, "properties"),
        ({"properties": {"blob": "x" * MAX_DOCUMENT_BYTES}}, "properties"),
        ({"properties": {"bad": "\x00"}}, "properties"),
    ],
)
def test_track_input_over_a_limit_is_400_naming_the_field(
    http: httpx.Client, site: Website, fields: dict[str, Any], field: str
) -> None:
    response = http.post(
        "/api/track", json=pageview(site, **fields), headers={"User-Agent": CHROME}
    )
    assert_400_naming(response, field)


@pytest.mark.parametrize("route", ["/api/payments/manual", "/api/track", "/api/identify"])
def test_json_nested_past_the_parser_is_400(http: httpx.Client, secret: str, route: str) -> None:
    response = http.post(
        route,
        content=b"[" * 30_000,
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


def test_one_hostile_payment_does_not_fail_the_others_of_its_batch(
    http: httpx.Client, site: Website, secret: str
) -> None:
    bodies = [payment(site) for _ in range(24)]
    bodies[7]["provider_payment_id"] = "pay_\x00"  # PostgreSQL cannot store a NUL
    with ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(
                lambda b: (
                    http.post("/api/payments/manual", json=b, headers=bearer(secret)).status_code
                ),
                bodies,
            )
        )
    assert codes == [200] * 7 + [400] + [200] * 16


def test_secret_keys_are_stored_only_as_hashes(
    http: httpx.Client, build: Builders, site: Website, engine: Engine
) -> None:
    secret = build.key(websites_=(site,))
    assert http.get("/api/websites", headers=bearer(secret)).status_code == 200
    random_part = secret.removeprefix("mk_live_")
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                assert random_part[4:] not in repr(tuple(row)), table


def test_no_key_or_email_in_the_logs_of_every_endpoint(
    http: httpx.Client, build: Builders, site: Website, caplog: pytest.LogCaptureFixture
) -> None:
    secret = build.key(websites_=(site,))
    email = f"Leak.{uuid.uuid4().hex}@Customer.example"
    user_id = f"user-{uuid.uuid4().hex}"
    auth = bearer(secret)
    site_id = str(site.id)
    visitor = str(uuid.uuid4())
    caplog.set_level(logging.DEBUG)
    track = pageview(site, visitorId=visitor)
    http.post("/api/track", json=track, headers={"User-Agent": CHROME})
    identify = {"publicKey": site.public_key, "visitorId": visitor, "email": email}
    http.post("/api/identify", json=identify)
    http.post("/api/identify", json={**identify, "email": None, "userId": user_id})
    http.post("/api/identify", json={"visitorId": visitor, "email": email}, headers=auth)
    http.post("/api/identify", json={**identify, "email": email + "@"})  # invalid
    paid = http.post("/api/payments/manual", json=payment(site, customer_email=email), headers=auth)
    http.post("/api/payments/manual", json=payment(site, customer_email=email + "@"), headers=auth)
    http.post("/api/payments/manual", json=payment(site), headers=bearer(secret + "x"))
    payment_id = paid.json()["payment"]["id"]
    for path in (
        f"/api/payments/{payment_id}",
        f"/api/payments?website_id={site_id}",
        f"/api/reports/revenue?website_id={site_id}",
        f"/api/reports/revenue?website_id={site_id}&format=csv",
        f"/api/reports/payments?website_id={site_id}",
        "/api/websites",
        "/metrics",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/js/metrivo.js",
        "/dashboard",
    ):
        http.get(path, headers=auth)
    http.post("/api/admin/replay", json={"website_id": site_id, "dry_run": True}, headers=auth)
    logged = caplog.text + "".join(str(r.args) + (r.exc_text or "") for r in caplog.records)
    assert "/api/admin/replay" in logged  # the run was captured
    for leak in (secret.removeprefix("mk_live_")[4:], email, email.lower(), email.split("@")[0]):
        assert leak not in logged
    assert user_id not in logged


BROWSER = {"/api/track", "/api/identify", "/js/metrivo.js"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/payments/manual"),
        ("GET", "/api/payments"),
        ("GET", "/api/websites"),
        ("GET", "/api/reports/revenue"),
        ("GET", "/api/reports/payments"),
        ("POST", "/api/admin/replay"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
        ("GET", "/dashboard"),
        ("OPTIONS", "/api/payments/manual"),
        ("OPTIONS", "/api/websites"),
    ],
)
def test_no_cors_headers_outside_the_browser_endpoints(
    http: httpx.Client, secret: str, site: Website, method: str, path: str
) -> None:
    response = http.request(
        method,
        path,
        params={"website_id": str(site.id)} if method == "GET" else None,
        json=payment(site) if method == "POST" else None,
        headers={
            **bearer(secret),
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert response.status_code < 500
    assert not any(h.lower().startswith("access-control-") for h in response.headers)


def test_cors_headers_on_the_browser_endpoints_only_for_their_requests(
    http: httpx.Client, build: Builders, site: Website
) -> None:
    origin = {"Origin": "https://shop.example.com"}
    visitor = str(uuid.uuid4())
    tracked = http.post(
        "/api/track",
        json=pageview(site, visitorId=visitor),
        headers={"User-Agent": CHROME, **origin},
    )
    assert tracked.headers["access-control-allow-origin"] == "https://shop.example.com"
    identify = {"publicKey": site.public_key, "visitorId": visitor, "email": "a@example.com"}
    identified = http.post("/api/identify", json=identify, headers=origin)
    assert identified.headers["access-control-allow-origin"] == "https://shop.example.com"
    preflight = http.options(
        "/api/identify", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    # Only Content-Type may be sent cross-origin: never an Authorization header.
    assert "authorization" not in preflight.headers["access-control-allow-headers"].lower()
    assert http.get("/js/metrivo.js").headers["access-control-allow-origin"] == "*"
    # The backend's identify (a secret key) is not a browser request: no CORS headers.
    key = build.key(websites_=(site,), scopes=("identify:write",))
    backend = http.post(
        "/api/identify",
        json={"visitorId": visitor, "email": "a@example.com"},
        headers={**bearer(key), **origin},
    )
    assert backend.status_code == 200
    assert "access-control-allow-origin" not in backend.headers


# 500s the fuzzing (tests/api/test_fuzz.py) found, fixed: each stays as a regression test.


def test_an_empty_limit_is_400(http: httpx.Client, site: Website, secret: str) -> None:
    response = http.get(f"/api/payments?website_id={site.id}&limit=", headers=bearer(secret))
    assert response.status_code in (200, 400)


def test_a_cursor_with_a_bad_id_is_400(http: httpx.Client, site: Website, secret: str) -> None:
    cursor = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", 5]').decode().rstrip("=")
    response = http.get(
        "/api/payments",
        params={"website_id": str(site.id), "cursor": cursor},
        headers=bearer(secret),
    )
    assert response.status_code == 400


def test_since_out_of_range_is_400(http: httpx.Client, site: Website, secret: str) -> None:
    since = "9999-12-31T23:59:59-05:00"
    response = http.get(
        "/api/payments", params={"website_id": str(site.id), "since": since}, headers=bearer(secret)
    )
    assert response.status_code == 400


@pytest.mark.parametrize("to", ["9999-12-31", "0001-01-02"])
def test_report_dates_out_of_range_are_400(
    http: httpx.Client, build: Builders, site: Website, to: str
) -> None:
    key = build.key(websites_=(site,), scopes=("reports:read",))
    response = http.get(
        "/api/reports/revenue", params={"website_id": str(site.id), "to": to}, headers=bearer(key)
    )
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["source", "campaign"])
def test_report_filters_with_nul_are_4xx(
    http: httpx.Client, build: Builders, site: Website, name: str
) -> None:
    key = build.key(websites_=(site,), scopes=("reports:read",))
    response = http.get(
        "/api/reports/revenue",
        params={"website_id": str(site.id), name: "a\x00"},
        headers=bearer(key),
    )
    assert response.status_code < 500


@pytest.mark.parametrize(
    "bounds",
    [{"since": "2026-01-01T00:00:00"}, {"until": "9999-12-31T23:59:59-05:00"}],
)
def test_replay_bounds_are_read_as_utc_or_refused(
    http: httpx.Client, build: Builders, site: Website, bounds: dict[str, str]
) -> None:
    key = build.key(websites_=(site,), scopes=("admin",))
    response = http.post(
        "/api/admin/replay",
        json={"website_id": str(site.id), "dry_run": True, **bounds},
        headers=bearer(key),
    )
    assert response.status_code in (200, 400)


def test_get_on_the_payment_intake_is_405(http: httpx.Client, secret: str) -> None:
    assert http.get("/api/payments/manual", headers=bearer(secret)).status_code == 405
