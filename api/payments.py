"""Payments: POST /api/payments/manual, GET /api/payments/{id}, GET /api/payments."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import DATABASE_DOWN, ApiError, not_found, service_unavailable
from api.responses import JSONResponse
from api.schemas import ManualPayment, validation_details
from api.state import AppState, app_state
from attribution.identity import email_hash
from db.base import utcnow
from db.models import ATTRIBUTION_CONFIDENCES, PAYMENT_STATUSES
from db.repositories import payments
from db.repositories.payments import NewPayment, Outcome, PageCursor, RecordResult
from db.session import in_transaction, unit_of_work
from workers.enqueue import BackgroundPublisher

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500


def record_payments(
    sessions: sessionmaker[Session], publisher: BackgroundPublisher, batch: Sequence[NewPayment]
) -> list[RecordResult]:
    """One transaction for a batch of payments; their jobs are queued after the commit."""
    results = in_transaction(sessions, lambda session: payments.record_batch(session, batch))
    created = [r.payment["id"] for r in results if r.outcome is Outcome.CREATED]
    if created:
        publisher.submit(created)
    return results


async def create_manual_payment(request: Request) -> Response:
    principal = await authenticate(request)
    principal.require(None, "payments:write")
    body = await request.body()
    try:
        data = ManualPayment.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    principal.require(data.website_id, "payments:write")
    state = app_state(request)
    payment = NewPayment(
        website_id=data.website_id,
        provider=data.provider,
        provider_payment_id=data.provider_payment_id,
        amount=data.amount,
        currency=data.currency,
        status=data.status,
        paid_at=data.paid_at or utcnow(),
        customer_email_hash=(
            email_hash(state.settings.hmac_key, data.customer_email)
            if data.customer_email
            else None
        ),
        visitor_id=data.visitor_id,
        session_id=data.session_id,
        metadata=data.metadata or {},
    )
    try:
        result = await state.payment_committer.submit(payment)
    except DATABASE_DOWN as exc:
        logger.error("payment not stored, database unavailable: %s", type(exc).__name__)
        raise service_unavailable(
            "The payment could not be stored right now; retry later (it is safe to resend)."
        ) from None
    if result.outcome is Outcome.CONFLICT:
        fields = ", ".join(result.conflicting_fields)
        raise ApiError(
            409,
            "conflict",
            f"A payment with this provider and provider_payment_id already exists with a "
            f"different {fields}; nothing was changed.",
            details=[
                {"field": name, "stored": result.payment[name]}
                for name in result.conflicting_fields
            ],
        )
    return JSONResponse(
        {
            "success": True,
            "duplicate": result.outcome is Outcome.DUPLICATE,
            "payment": payment_view(result.payment),
        }
    )


async def get_payment(request: Request) -> Response:
    principal = await authenticate(request)
    principal.require(None, "payments:read", "payments:write")
    payment_id: uuid.UUID = request.path_params["payment_id"]  # the route matched a UUID
    state = app_state(request)
    detail = await run_in_threadpool(_load_detail, state, payment_id)
    # A payment of a website the key may not see is reported as missing.
    if detail is None or detail["website_id"] not in principal.website_ids:
        raise not_found("No such payment.")
    return JSONResponse({"success": True, "payment": detail})


def _load_detail(state: AppState, payment_id: uuid.UUID) -> dict[str, Any] | None:
    with unit_of_work(state.sessions) as session:
        row = payments.get_view(session, payment_id)
        if row is None:
            return None
        changes = payments.history(session, payment_id)
    return {**payment_detail_view(row), "history": changes}


def payment_detail_view(row: dict[str, Any]) -> dict[str, Any]:
    """The payment with its evidence: why it was attributed where it was."""
    return {
        **payment_view(row),
        "received_at": row["received_at"],
        "evidence": {
            "method": row["attribution_method"],
            "model": row["attribution_model"],
            "matched_session_id": row["matched_session_id"],
            "matched_visitor_id": row["matched_visitor_id"],
            "attributed_at": row["attributed_at"],
        },
        "attribution_attempts": row["attribution_attempts"],
        "attribution_last_error": row["attribution_last_error"],
    }


async def list_payments(request: Request) -> Response:
    principal = await authenticate(request)
    params = request.query_params
    errors: list[dict[str, str]] = []
    website_id = _parse(params.get("website_id"), uuid.UUID, "website_id", errors, required=True)
    status = params.get("status")
    if status is not None and status not in PAYMENT_STATUSES:
        errors.append(
            {"field": "status", "message": f"status must be one of: {', '.join(PAYMENT_STATUSES)}"}
        )
    attribution = params.get("attribution")
    choices = (*ATTRIBUTION_CONFIDENCES, "failed")
    if attribution is not None and attribution not in choices:
        errors.append(
            {"field": "attribution", "message": f"attribution must be one of: {', '.join(choices)}"}
        )
    since = _parse(params.get("since"), _parse_datetime, "since", errors)
    limit = _parse(params.get("limit") or "50", int, "limit", errors)
    if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
        errors.append({"field": "limit", "message": f"limit must be 1 to {MAX_PAGE_SIZE}"})
    cursor = _parse(params.get("cursor"), _decode_cursor, "cursor", errors)
    if errors:
        raise ApiError(400, "invalid_request", "Invalid query parameters.", details=errors)
    assert website_id is not None
    assert limit is not None
    principal.require(website_id, "payments:read", "payments:write")
    state = app_state(request)

    def load() -> list[dict[str, Any]]:
        with unit_of_work(state.sessions) as session:
            return payments.list_page(
                session,
                website_id=website_id,
                status=status,
                confidence=attribution if attribution != "failed" else None,
                attribution_status="failed" if attribution == "failed" else None,
                since=since,
                after=cursor,
                limit=limit,
            )

    rows = await run_in_threadpool(load)
    next_cursor = _encode_cursor(rows[-1]) if len(rows) == limit else None
    return JSONResponse(
        {"success": True, "payments": [payment_view(r) for r in rows], "next_cursor": next_cursor}
    )


def payment_view(row: dict[str, Any]) -> dict[str, Any]:
    """The spec's payment shape, plus the design's extra fields."""
    return {
        "id": row["id"],
        "website_id": row["website_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "provider": row["provider"],
        "provider_payment_id": row["provider_payment_id"],
        "status": row["status"],
        "paid_at": row["paid_at"],
        "attributed_source": row["attributed_source"],
        "attributed_medium": row["attributed_medium"],
        "attributed_campaign": row["attributed_campaign"],
        "attributed_landing_page": row["attributed_landing_page"],
        "attributed_channel": row["attributed_channel"],
        "attribution_confidence": row["attribution_confidence"],
        "attribution_status": row["attribution_status"],
        "attribution_method": row["attribution_method"],
    }


def _invalid(exc: ValidationError) -> ApiError:
    details = validation_details(exc)
    types = {e["type"] for e in exc.errors()}
    if "json_invalid" in types:
        return ApiError(400, "invalid_json", "The request body is not valid JSON.", details)
    if "model_type" in types:
        return ApiError(400, "invalid_json", "The request body must be a JSON object.", details)
    fields = ", ".join(sorted({d["field"] for d in details}))
    return ApiError(400, "invalid_payload", f"Invalid payment: check {fields}.", details)


def _parse(
    raw: str | None, parse: Any, field: str, errors: list[dict[str, str]], required: bool = False
) -> Any:
    if raw is None or raw == "":
        if required:
            errors.append({"field": field, "message": f"{field} is required"})
        return None
    try:
        return parse(raw)
    except (ValueError, TypeError, OverflowError):
        errors.append({"field": field, "message": f"{field} is not valid"})
        return None


def _parse_datetime(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    value = value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)
    return value.astimezone(utcnow().tzinfo)  # OverflowError at the ends of time: a 400


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = orjson.dumps([row["received_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(raw: str) -> PageCursor:
    try:
        received_at, payment_id = orjson.loads(
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        )
        if not isinstance(received_at, str) or not isinstance(payment_id, str):
            raise TypeError("cursor fields must be strings")
        return PageCursor(datetime.fromisoformat(received_at), uuid.UUID(payment_id))
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError("bad cursor") from exc
