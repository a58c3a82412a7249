"""GET /api/payments/{id} and GET /api/payments, and the OpenAPI document."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.schemas import PaymentDetailResponse, PaymentPage
from db.models import Website
from tests.conftest import Builders, bearer, unique


def create(http: httpx.Client, secret: str, site: Website, **fields: Any) -> dict[str, Any]:
    body = {
        "website_id": str(site.id),
        "amount": 10,
        "currency": "USD",
        "provider_payment_id": unique(),
        **fields,
    }
    response = http.post("/api/payments/manual", json=body, headers=bearer(secret))
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()["payment"]
    return payment


def test_get_a_payment_with_its_evidence(http: httpx.Client, site: Website, secret: str) -> None:
    created = create(http, secret, site, amount=12.5, metadata={"plan": "pro"})
    response = http.get(f"/api/payments/{created['id']}", headers=bearer(secret))
    assert response.status_code == 200
    PaymentDetailResponse.model_validate(response.json())
    payment = response.json()["payment"]
    assert payment["amount"] == 12.5
    assert payment["attribution_confidence"] == "pending"
    assert payment["evidence"] == {
        "method": None,
        "model": None,
        "matched_session_id": None,
        "matched_visitor_id": None,
        "attributed_at": None,
    }
    assert payment["history"][0]["status"] == "paid"


@pytest.mark.parametrize("scopes", [("payments:read",), ("payments:write",)])
def test_read_needs_payments_read_or_write(
    http: httpx.Client, site: Website, secret: str, build: Builders, scopes: tuple[str, ...]
) -> None:
    created = create(http, secret, site)
    reader = build.key(websites_=(site,), scopes=scopes)
    assert http.get(f"/api/payments/{created['id']}", headers=bearer(reader)).status_code == 200
    listing = http.get("/api/payments", params={"website_id": str(site.id)}, headers=bearer(reader))
    assert listing.status_code == 200


def test_read_without_the_scope_is_403(
    http: httpx.Client, site: Website, secret: str, build: Builders
) -> None:
    created = create(http, secret, site)
    reporter = build.key(websites_=(site,), scopes=("reports:read",))
    assert http.get(f"/api/payments/{created['id']}", headers=bearer(reporter)).status_code == 403
    listing = http.get(
        "/api/payments", params={"website_id": str(site.id)}, headers=bearer(reporter)
    )
    assert listing.status_code == 403


def test_another_websites_payment_is_not_visible(
    http: httpx.Client, site: Website, secret: str, build: Builders
) -> None:
    created = create(http, secret, site)
    other = build.website(name="other")
    outsider = build.key(websites_=(other,), scopes=("payments:read",))
    response = http.get(f"/api/payments/{created['id']}", headers=bearer(outsider))
    assert response.status_code == 404
    listing = http.get(
        "/api/payments", params={"website_id": str(site.id)}, headers=bearer(outsider)
    )
    assert listing.status_code == 403


def test_unknown_or_malformed_payment_id_is_404(http: httpx.Client, secret: str) -> None:
    assert http.get(f"/api/payments/{uuid.uuid4()}", headers=bearer(secret)).status_code == 404
    assert http.get("/api/payments/nope", headers=bearer(secret)).status_code == 404
    assert http.get(f"/api/payments/{uuid.uuid4()}").status_code == 401


def test_list_pages_through_every_payment_newest_first(
    http: httpx.Client, site: Website, secret: str
) -> None:
    created = [create(http, secret, site, amount=i)["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"website_id": str(site.id), "limit": "3"}
        if cursor:
            params["cursor"] = cursor
        response = http.get("/api/payments", params=params, headers=bearer(secret))
        assert response.status_code == 200, response.text
        page = PaymentPage.model_validate(response.json())
        seen += [str(p.id) for p in page.payments]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen)) == 7
    assert seen[0] == created[-1]


def test_list_filters(http: httpx.Client, site: Website, secret: str) -> None:
    kept = create(http, secret, site)
    refunded = create(http, secret, site)
    http.post(
        "/api/payments/manual",
        headers=bearer(secret),
        json={
            "website_id": str(site.id),
            "amount": 10,
            "currency": "USD",
            "provider_payment_id": refunded["provider_payment_id"],
            "status": "refunded",
        },
    )

    def ids(**params: str) -> set[str]:
        response = http.get(
            "/api/payments", params={"website_id": str(site.id), **params}, headers=bearer(secret)
        )
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["payments"]}

    assert ids(status="refunded") == {refunded["id"]}
    assert kept["id"] in ids(status="paid")
    assert {kept["id"], refunded["id"]} <= ids(attribution="pending")
    assert ids(attribution="failed") == set()
    assert ids(since="2999-01-01T00:00:00Z") == set()
    assert {kept["id"], refunded["id"]} <= ids(since="2000-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"website_id": None}, "website_id"),
        ({"website_id": "x"}, "website_id"),
        ({"status": "nope"}, "status"),
        ({"attribution": "great"}, "attribution"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
    ],
)
def test_list_rejects_bad_parameters(
    http: httpx.Client, site: Website, secret: str, params: dict[str, str | None], field: str
) -> None:
    query = {k: v for k, v in {"website_id": str(site.id), **params}.items() if v is not None}
    response = http.get("/api/payments", params=query, headers=bearer(secret))
    assert response.status_code == 400
    assert field in {d["field"] for d in response.json()["error"]["details"]}


def test_openapi_describes_the_payment_endpoints(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    post = document["paths"]["/api/payments/manual"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ManualPayment"
    )
    assert set(post["responses"]) >= {"200", "400", "401", "403", "409", "413", "503"}
    schemas = document["components"]["schemas"]
    assert set(schemas["ManualPayment"]["required"]) == {
        "website_id",
        "amount",
        "currency",
        "provider_payment_id",
    }
    assert "attribution_confidence" in schemas["PaymentView"]["properties"]
    assert "/api/payments/{payment_id}" in document["paths"]
    assert "/api/payments" in document["paths"]
    for path in document["paths"].values():
        for operation in path.values():
            for response in operation["responses"].values():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in schemas
