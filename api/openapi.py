"""GET /openapi.json, with every body schema generated from the pydantic models.

It describes every JSON endpoint (the dashboard's pages, the tracker script and
the Prometheus text are left out); the fuzzing tests (tests/api/test_fuzz.py)
hold the server to it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from api.admin import ReplayRequest
from api.payments import MAX_PAGE_SIZE
from api.responses import JSONResponse
from api.schemas import (
    Accepted,
    ErrorResponse,
    Identify,
    Liveness,
    ManualPayment,
    PaymentDetailResponse,
    PaymentPage,
    PaymentResponse,
    Readiness,
    RecentPayments,
    ReplayResponse,
    RevenueReport,
    Success,
    TrackEvent,
    WebsiteList,
)
from db.models import ATTRIBUTION_CONFIDENCES, PAYMENT_STATUSES
from db.repositories.reports import GROUPS

BEARER: list[dict[str, list[str]]] = [{"secretKey": []}]
REQUESTS: list[type[BaseModel]] = [ManualPayment, TrackEvent, Identify, ReplayRequest]
RESPONSES: list[type[BaseModel]] = [
    PaymentResponse,
    PaymentDetailResponse,
    PaymentPage,
    Accepted,
    Success,
    RevenueReport,
    RecentPayments,
    WebsiteList,
    ReplayResponse,
    Liveness,
    Readiness,
    ErrorResponse,
]
UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid JSON, query or payload; `details` names each offending field.",
        401: "Missing, unknown or revoked key.",
        403: "The key lacks the scope, or is not authorized for the website (or, for a "
        "public key, the Origin is not one of the website's domains).",
        404: "Not found (or not visible to this key).",
        409: "Same provider and provider_payment_id with a different amount or currency.",
        413: "Body larger than the limit.",
        429: "Over the rate limit; retry after `Retry-After` seconds.",
        503: "Database unavailable; retry after `Retry-After` seconds (safe to resend).",
    }
    responses = {str(code): _json(ErrorResponse, text[code]) for code in codes}
    for code in ("429", "503"):
        if code in responses:
            responses[code]["headers"] = RETRY_AFTER
    return responses


def _query(
    name: str, description: str, schema: dict[str, Any], required: bool = False
) -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "description": description, "schema": schema}
    return {**parameter, "required": True} if required else parameter


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _website_id(description: str = "The website.") -> dict[str, Any]:
    return _query("website_id", description, UUID, required=True)


def _payments() -> dict[str, Any]:
    return {
        "/api/payments/manual": {
            "post": {
                "summary": "Submit a payment event for attribution",
                "security": BEARER,
                "requestBody": _body(ManualPayment),
                "responses": {
                    "200": _json(PaymentResponse, "Stored (or already stored)."),
                    **_errors(400, 401, 403, 409, 413, 429, 503),
                },
            }
        },
        "/api/payments/{payment_id}": {
            "get": {
                "summary": "A payment with its attribution and evidence",
                "security": BEARER,
                "parameters": [
                    {"name": "payment_id", "in": "path", "required": True, "schema": UUID}
                ],
                "responses": {
                    "200": _json(PaymentDetailResponse, "The payment."),
                    **_errors(401, 403, 404, 429, 503),
                },
            }
        },
        "/api/payments": {
            "get": {
                "summary": "A website's payments, newest first, by cursor",
                "security": BEARER,
                "parameters": [
                    _website_id(),
                    _query("status", "Payment status.", {"enum": list(PAYMENT_STATUSES)}),
                    _query(
                        "attribution",
                        "Confidence, or `failed`.",
                        {"enum": [*ATTRIBUTION_CONFIDENCES, "failed"]},
                    ),
                    _query(
                        "since",
                        "Received at or after (ISO 8601).",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query(
                        "limit",
                        f"1 to {MAX_PAGE_SIZE} (default 50).",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
                    ),
                    _query("cursor", "`next_cursor` of the previous page.", {"type": "string"}),
                ],
                "responses": {
                    "200": _json(PaymentPage, "A page of payments."),
                    **_errors(400, 401, 403, 429, 503),
                },
            }
        },
    }


def _browser() -> dict[str, Any]:
    return {
        "/api/track": {
            "post": {
                "summary": "The tracker's collector: a page view or a custom event",
                "description": "Authenticated by the website's public key in the body.",
                "security": [],
                "requestBody": _body(TrackEvent),
                "responses": {
                    "202": _json(Accepted, "Recorded (or ignored: a bot, the owner's browsing)."),
                    **_errors(400, 401, 403, 413, 429, 503),
                },
            }
        },
        "/api/identify": {
            "post": {
                "summary": "Link a visitor to an email or your own user id",
                "description": "With the public key (browser): only a visitor the tracker has "
                "recorded on the website (else 409 `unknown_visitor`), rate limited per "
                "visitor. With a secret key that has identify:write: any visitor id.",
                "security": [{}, *BEARER],
                "requestBody": _body(Identify),
                "responses": {
                    "200": _json(Success, "Linked."),
                    "409": _json(ErrorResponse, "A public-key identify of an unseen visitor."),
                    **_errors(400, 401, 403, 413, 429, 503),
                },
            }
        },
    }


def _reports() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "/api/reports/revenue": {
            "get": {
                "summary": "Revenue by source, medium, campaign, channel, landing page, "
                "confidence or day",
                "security": BEARER,
                "parameters": [
                    _website_id(),
                    _query("from", "First day (YYYY-MM-DD).", {"type": "string", "format": "date"}),
                    _query("to", "Last day (YYYY-MM-DD).", {"type": "string", "format": "date"}),
                    _query("group_by", "How rows are grouped.", {"enum": list(GROUPS)}),
                    _query(
                        "confidence",
                        "Only payments of this confidence.",
                        {"enum": list(ATTRIBUTION_CONFIDENCES)},
                    ),
                    _query("source", "Only payments attributed to this source.", text),
                    _query("campaign", "Only payments attributed to this campaign.", text),
                    _query("format", "json (default) or csv.", {"enum": ["json", "csv"]}),
                ],
                "responses": {
                    "200": {
                        **_json(RevenueReport, "The report."),
                        "content": {
                            "application/json": {"schema": _ref(RevenueReport)},
                            "text/csv": {"schema": text},
                        },
                    },
                    **_errors(400, 401, 403, 404, 429, 503),
                },
            }
        },
        "/api/reports/payments": {
            "get": {
                "summary": "A website's latest payments with their evidence",
                "security": BEARER,
                "parameters": [
                    _website_id(),
                    _query("limit", "1 to 200 (default 20).", {"type": "integer"}),
                ],
                "responses": {
                    "200": _json(RecentPayments, "The payments, newest first."),
                    **_errors(400, 401, 403, 429, 503),
                },
            }
        },
        "/api/websites": {
            "get": {
                "summary": "The websites this key is authorized for",
                "security": BEARER,
                "responses": {
                    "200": _json(WebsiteList, "The websites."),
                    **_errors(401, 429, 503),
                },
            }
        },
    }


def _operations() -> dict[str, Any]:
    return {
        "/api/admin/replay": {
            "post": {
                "summary": "Queue a website's payments for attribution again (scope admin)",
                "security": BEARER,
                "requestBody": _body(ReplayRequest),
                "responses": {
                    "200": _json(ReplayResponse, "How many were matched and queued."),
                    **_errors(400, 401, 403, 413, 429, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is up",
                "security": [],
                "responses": {"200": _json(Liveness, "Up.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "The database and the broker answer",
                "security": [],
                "responses": {
                    "200": _json(Readiness, "Ready."),
                    "503": {**_json(Readiness, "A check failed."), "headers": RETRY_AFTER},
                },
            }
        },
    }


@cache
def build_document() -> dict[str, Any]:
    modes: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        *((model, "validation") for model in REQUESTS),
        *((model, "serialization") for model in RESPONSES),
    ]
    _, definitions = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Metrivo", "version": "0.1.0"},
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"secretKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {**_payments(), **_browser(), **_reports(), **_operations()},
    }


async def openapi_json(_request: Request) -> Response:
    return JSONResponse(build_document())
