"""GET /openapi.json, with every body schema generated from the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from api.responses import JSONResponse
from api.schemas import (
    ErrorResponse,
    ManualPayment,
    PaymentDetailResponse,
    PaymentPage,
    PaymentResponse,
)

BEARER: list[dict[str, list[str]]] = [{"secretKey": []}]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid JSON, query or payload; `details` names each offending field.",
        401: "Missing, unknown or revoked API key.",
        403: "The key lacks the scope, or is not authorized for the website.",
        404: "Not found (or not visible to this key).",
        409: "Same provider and provider_payment_id with a different amount or currency.",
        413: "Body larger than the limit.",
        503: "Database unavailable; retry after `Retry-After` seconds (safe to resend).",
    }
    return {str(code): _json(ErrorResponse, text[code]) for code in codes}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


@cache
def build_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ManualPayment,
        PaymentResponse,
        PaymentDetailResponse,
        PaymentPage,
        ErrorResponse,
    ]
    modes: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation" if m is ManualPayment else "serialization") for m in models
    ]
    _, definitions = models_json_schema(
        modes,
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Metrivo", "version": "0.1.0"},
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"secretKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/payments/manual": {
                "post": {
                    "summary": "Submit a payment event for attribution",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ManualPayment)}},
                    },
                    "responses": {
                        "200": _json(PaymentResponse, "Stored (or already stored)."),
                        **_errors(400, 401, 403, 409, 413, 503),
                    },
                }
            },
            "/api/payments/{payment_id}": {
                "get": {
                    "summary": "A payment with its attribution and evidence",
                    "security": BEARER,
                    "parameters": [
                        {
                            "name": "payment_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": _json(PaymentDetailResponse, "The payment."),
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/payments": {
                "get": {
                    "summary": "A website's payments, newest first, by cursor",
                    "security": BEARER,
                    "parameters": [
                        {
                            **_query(
                                "website_id", "The website.", {"type": "string", "format": "uuid"}
                            ),
                            "required": True,
                        },
                        _query("status", "Payment status.", {"type": "string"}),
                        _query("attribution", "Confidence, or `failed`.", {"type": "string"}),
                        _query(
                            "since",
                            "Received at or after (ISO 8601).",
                            {"type": "string", "format": "date-time"},
                        ),
                        _query("limit", "1 to 500 (default 50).", {"type": "integer"}),
                        _query("cursor", "`next_cursor` of the previous page.", {"type": "string"}),
                    ],
                    "responses": {
                        "200": _json(PaymentPage, "A page of payments."),
                        **_errors(400, 401, 403),
                    },
                }
            },
        },
    }


async def openapi_json(_request: Request) -> Response:
    return JSONResponse(build_document())
