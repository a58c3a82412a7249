"""POST /api/track: the tracker's collector, writing page views in batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError
from api.responses import JSONResponse
from api.schemas import TrackEvent, validation_details
from api.sites import check_origin, cors_headers, site_for_public_key
from api.state import app_state
from attribution.channels import Acquisition
from attribution.sessions import (
    acquisition_for_new_session,
    is_bot,
    is_ignored_visit,
    landing_path,
)
from db.base import utcnow
from db.repositories import payments, tracking
from db.repositories.tracking import ACQUISITION_FIELDS, SessionActivity
from db.session import in_transaction
from workers.enqueue import BackgroundPublisher

MAX_FIELD = 255


@dataclass(frozen=True)
class Visit:
    """A validated tracker event, stamped with the time we received it."""

    website_id: uuid.UUID
    domains: tuple[str, ...]
    visitor_id: uuid.UUID
    session_id: uuid.UUID
    is_pageview: bool
    url: str
    referrer: str | None
    received_at: datetime


async def track(request: Request) -> Response:
    body = await request.body()
    try:
        event = TrackEvent.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_payload", "Invalid tracking event.", validation_details(exc)
        ) from None
    if event.type == "event" and not event.name:
        raise ApiError(
            400,
            "invalid_payload",
            "Invalid tracking event.",
            [{"field": "name", "message": "an event needs a name"}],
        )
    site = await site_for_public_key(request, event.public_key)
    check_origin(request, site)
    headers = cors_headers(request)
    if is_bot(request.headers.get("user-agent")):
        return JSONResponse({"success": True, "ignored": "bot"}, 202, headers=headers)
    if is_ignored_visit(event.url):
        return JSONResponse({"success": True, "ignored": "metrivo_ignore"}, 202, headers=headers)
    visit = Visit(
        website_id=site.id,
        domains=site.domains,
        visitor_id=event.visitor_id,
        session_id=event.session_id,
        is_pageview=event.type == "pageview",
        url=event.url,
        referrer=event.referrer,
        received_at=utcnow(),
    )
    await app_state(request).visit_committer.submit(visit)
    return JSONResponse({"success": True}, 202, headers=headers)


def record_visits(
    sessions: sessionmaker[Session], publisher: BackgroundPublisher, visits: Sequence[Visit]
) -> list[None]:
    """One transaction for a batch of visits: visitors, then sessions.

    Payments that named one of the new sessions (or their visitors) before the
    tracker's event arrived are queued for attribution again after the commit.
    """

    def write(session: Session) -> list[uuid.UUID]:
        late: list[uuid.UUID] = []
        tracking.upsert_visitors(
            session, [(v.website_id, v.visitor_id, v.received_at) for v in visits]
        )
        by_session: dict[tuple[uuid.UUID, uuid.UUID], list[Visit]] = {}
        for visit in visits:
            by_session.setdefault((visit.website_id, visit.session_id), []).append(visit)
        known = tracking.existing_sessions(session, by_session)
        activity = []
        for key, group in by_session.items():
            first = group[0]
            acquisition = {} if key in known else _acquisition(session, first)
            activity.append(
                SessionActivity(
                    website_id=first.website_id,
                    session_id=first.session_id,
                    visitor_id=first.visitor_id,
                    first_seen_at=first.received_at,
                    last_seen_at=group[-1].received_at,
                    pageviews=sum(v.is_pageview for v in group),
                    events=sum(not v.is_pageview for v in group),
                    acquisition=acquisition,
                )
            )
        tracking.upsert_sessions(session, activity)
        new = [a for a in activity if (a.website_id, a.session_id) not in known]
        for website_id in {a.website_id for a in new}:
            late += payments.payments_awaiting_journey(
                session,
                website_id,
                session_ids=[a.session_id for a in new if a.website_id == website_id],
                visitor_ids=[a.visitor_id for a in new if a.website_id == website_id],
            )
        payments.mark_for_reattribution(session, late)
        return late

    late = in_transaction(sessions, write)
    if late:
        publisher.submit(late)
    return [None] * len(visits)


def _acquisition(session: Session, first: Visit) -> dict[str, str | None]:
    def previous() -> Acquisition | None:
        row = tracking.latest_acquisition(
            session, first.website_id, first.visitor_id, first.received_at
        )
        if not row or not row["source"]:
            return None
        return Acquisition(
            source=row["source"],
            medium=row["medium"] or "none",
            channel=row["channel"] or "Unassigned",
            campaign=row["campaign"],
            term=row["term"],
            content=row["content"],
            click_id=row["click_id"],
        )

    chosen = acquisition_for_new_session(
        first.url, first.referrer, own_domains=first.domains, previous=previous
    )
    values: dict[str, str | None] = {
        name: _clip(getattr(chosen, name, None)) for name in ACQUISITION_FIELDS
    }
    values.update(
        landing_url=first.url,
        landing_path=landing_path(first.url),
        referrer=first.referrer,
    )
    return values


def _clip(value: object) -> str | None:
    return value[:MAX_FIELD] if isinstance(value, str) else None
