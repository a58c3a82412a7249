"""POST /api/identify: public key (as in the spec) or a secret key with identify:write.

A public-key identify links only a visitor the tracker has recorded on the website
(else 409 `unknown_visitor`); a secret key may link any visitor id.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from attribution.identity import email_hash
from db.models import Identity, Visitor, Website
from db.session import unit_of_work
from tests.conftest import TEST_SECRET, Builders, bearer

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def identities(sessions: sessionmaker[Session], site: Website) -> list[Identity]:
    with unit_of_work(sessions) as session:
        return list(session.scalars(select(Identity).where(Identity.website_id == site.id)))


def seen(http: httpx.Client, site: Website, user_agent: str = CHROME) -> str:
    """A visitor id the tracker has recorded on `site` (a desktop browser's page view)."""
    visitor = str(uuid.uuid4())
    response = http.post(
        "/api/track",
        json={
            "publicKey": site.public_key,
            "visitorId": visitor,
            "sessionId": str(uuid.uuid4()),
            "type": "pageview",
            "url": "https://shop.example.com/",
        },
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 202, response.text
    return visitor


def body(site: Website, visitor: str, **fields: Any) -> dict[str, Any]:
    return {
        "publicKey": site.public_key,
        "visitorId": visitor,
        "email": "User@Example.com ",
        "properties": {"plan": "starter"},
        **fields,
    }


def test_the_spec_example_links_the_email_as_a_keyed_hash_only(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session], engine: Engine
) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    response = http.post("/api/identify", json=body(site, seen(http, site), email=email))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    (row,) = identities(sessions, site)
    assert row.kind == "email"
    assert row.value_hash == email_hash(TEST_SECRET.encode(), email.upper())
    assert row.properties == {"plan": "starter"}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for stored in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                assert email.split("@")[0] not in repr(tuple(stored)), table


def test_a_later_identify_links_more_visitors(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    for _ in range(2):
        assert http.post("/api/identify", json=body(site, seen(http, site))).status_code == 200
    again = body(site, seen(http, site))
    http.post("/api/identify", json=again)
    http.post("/api/identify", json=again)  # the same link twice stays one row
    rows = identities(sessions, site)
    assert len(rows) == 3
    assert len({r.value_hash for r in rows}) == 1


def test_user_id_instead_of_email(
    http: httpx.Client, site: Website, sessions: sessionmaker[Session]
) -> None:
    response = http.post(
        "/api/identify", json=body(site, seen(http, site), email=None, userId="cus_42")
    )
    assert response.status_code == 200
    (row,) = identities(sessions, site)
    assert row.kind == "user_id"
    assert "cus_42" not in row.value_hash


def test_a_public_key_cannot_link_a_visitor_the_tracker_has_not_seen(
    http: httpx.Client, site: Website, build: Builders, sessions: sessionmaker[Session]
) -> None:
    other = build.website(name="other")
    unseen = [
        str(uuid.uuid4()),  # never tracked anywhere
        seen(http, other),  # tracked, but on another website
        seen(http, site, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)"),  # a bot: dropped
    ]
    for visitor in unseen:
        response = http.post("/api/identify", json=body(site, visitor))
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "unknown_visitor"
        assert "secret key" in error["message"]
    assert identities(sessions, site) == []
    with unit_of_work(sessions) as session:
        for visitor in unseen[::2]:
            assert session.get(Visitor, (site.id, uuid.UUID(visitor))) is None


def test_secret_key_with_identify_write_may_link_any_visitor(
    http: httpx.Client, site: Website, build: Builders, sessions: sessionmaker[Session]
) -> None:
    secret = build.key(websites_=(site,), scopes=("identify:write",))
    visitor = str(uuid.uuid4())  # the tracker never saw it: the backend is trusted
    payload = {"visitorId": visitor, "email": "a@example.com"}
    assert http.post("/api/identify", json=payload, headers=bearer(secret)).status_code == 200
    (row,) = identities(sessions, site)
    assert str(row.visitor_id) == visitor
    with unit_of_work(sessions) as session:
        assert session.get(Visitor, (site.id, uuid.UUID(visitor))) is not None


def test_secret_key_without_the_scope_or_for_another_site_is_403(
    http: httpx.Client, site: Website, build: Builders
) -> None:
    payload = {"visitorId": str(uuid.uuid4()), "email": "a@example.com", "websiteId": str(site.id)}
    no_scope = build.key(websites_=(site,), scopes=("payments:write",))
    assert http.post("/api/identify", json=payload, headers=bearer(no_scope)).status_code == 403
    other = build.key(websites_=(build.website(name="other"),), scopes=("identify:write",))
    assert http.post("/api/identify", json=payload, headers=bearer(other)).status_code == 403
    assert (
        http.post("/api/identify", json=payload, headers=bearer("mk_live_nope")).status_code == 401
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": None}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"visitorId": "x"}, "visitorId"),
        ({"properties": "x"}, "properties"),
        ({"properties": {"a": {"b": {"c": {"d": {"e": {}}}}}}}, "properties"),
        ({"properties": {"blob": "x" * 17_000}}, "properties"),
        ({"email": None, "userId": "cus\u0000"}, "userId"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    http: httpx.Client, site: Website, fields: dict[str, Any], field: str
) -> None:
    response = http.post("/api/identify", json=body(site, str(uuid.uuid4()), **fields))
    assert response.status_code == 400
    assert field in {d["field"] for d in response.json()["error"]["details"]}


def test_unknown_public_key_is_401_and_foreign_origin_403(
    http: httpx.Client, site: Website
) -> None:
    visitor = seen(http, site)
    assert (
        http.post("/api/identify", json=body(site, visitor, publicKey="pk_nope")).status_code == 401
    )
    assert http.post("/api/identify", json=body(site, visitor, publicKey=None)).status_code == 401
    foreign = http.post(
        "/api/identify", json=body(site, visitor), headers={"Origin": "https://evil.test"}
    )
    assert foreign.status_code == 403


def test_oversized_identify_is_413(http: httpx.Client, site: Website) -> None:
    big = body(site, seen(http, site), properties={"blob": "x" * 70_000})
    assert http.post("/api/identify", json=big).status_code == 413
