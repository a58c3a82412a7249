"""POST /api/identify: link a visitor to an email (kept only as an HMAC) or a user id.

From the browser (public key) a visitor can be identified only once the tracker
has recorded it on that website, and only so often per minute: otherwise anyone
could link strangers' emails to visitors of their own making and take credit for
their purchases. A secret key with `identify:write` (the customer's backend) is
trusted to link any visitor id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate, bearer_token
from api.errors import ApiError
from api.responses import JSONResponse
from api.schemas import Identify, validation_details
from api.sites import check_origin, cors_headers, site_for_public_key
from api.state import AppState, app_state
from attribution.identity import email_hash, user_id_hash
from db.base import utcnow
from db.repositories import attribution, payments, tracking
from db.session import in_transaction


def unknown_visitor() -> ApiError:
    return ApiError(
        409,
        "unknown_visitor",
        "This visitorId has not been seen on this website: identify from the browser after "
        "the tracker's page view, or from your backend with a secret key that has "
        "identify:write.",
    )


@dataclass(frozen=True)
class Link:
    website_id: uuid.UUID
    visitor_id: uuid.UUID
    email_hash: str | None
    user_id_hash: str | None
    properties: dict[str, Any]


async def identify(request: Request) -> Response:
    body = await request.body()
    try:
        data = Identify.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_payload", "Invalid identify call.", validation_details(exc)
        ) from None
    if not data.email and not data.user_id:
        raise ApiError(
            400,
            "invalid_payload",
            "Invalid identify call.",
            [{"field": "email", "message": "send an email or a userId"}],
        )
    headers: dict[str, str] = {}
    trusted = bearer_token(request) is not None
    if trusted:
        principal = await authenticate(request)
        website_id = data.website_id
        if website_id is None and len(principal.website_ids) == 1:
            (website_id,) = principal.website_ids
        if website_id is None:
            raise ApiError(
                400,
                "invalid_payload",
                "Invalid identify call.",
                [{"field": "websiteId", "message": "required with a key for several websites"}],
            )
        principal.require(website_id, "identify:write")
    else:
        site = await site_for_public_key(request, data.public_key, identify=data.visitor_id)
        check_origin(request, site)
        website_id = site.id
        headers = cors_headers(request)
    state = app_state(request)
    key = state.settings.hmac_key
    link = Link(
        website_id=website_id,
        visitor_id=data.visitor_id,
        email_hash=email_hash(key, data.email) if data.email else None,
        user_id_hash=user_id_hash(key, data.user_id) if data.user_id else None,
        properties=data.properties or {},
    )
    upgraded = await run_in_threadpool(record_link, state, link, known_visitor_only=not trusted)
    if upgraded:
        state.background_publisher.submit(upgraded)
    return JSONResponse({"success": True}, 200, headers=headers)


def record_link(
    state: AppState, link: Link, *, known_visitor_only: bool = False
) -> list[uuid.UUID]:
    """Store the link; returns the payments it may upgrade, marked for re-attribution.

    With `known_visitor_only`, a visitor the tracker has not recorded on the website is
    refused (409) and nothing is stored.
    """
    now = utcnow()

    # Retried as a deadlock victim: it marks payments the intake may be locking too.
    def write(session: Session) -> list[uuid.UUID]:
        if known_visitor_only:
            visitor = (link.website_id, link.visitor_id)
            if visitor not in attribution.known_visitors(session, [visitor]):
                raise unknown_visitor()
        tracking.upsert_visitors(session, [(link.website_id, link.visitor_id, now)])
        for kind, value in (("email", link.email_hash), ("user_id", link.user_id_hash)):
            if value:
                tracking.link_identity(
                    session,
                    website_id=link.website_id,
                    kind=kind,
                    value_hash=value,
                    visitor_id=link.visitor_id,
                    properties=link.properties,
                    now=now,
                )
        weaker = (
            payments.weak_payments_for_email(session, link.website_id, link.email_hash)
            if link.email_hash
            else []
        )
        payments.mark_for_reattribution(session, weaker, now=now)
        return weaker

    return in_transaction(state.sessions, write)
