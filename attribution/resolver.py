"""The attribution resolver: a payment and its journey in, a source with a confidence out.

Evidence is tried in order and the first that matches decides the tier:
the payment's recorded session or visitor (high), its email or user id matched
through identify (medium), acquisition data carried in its metadata (low),
nothing (unknown). Within a tier the website's model picks one touch among the
sessions started in the lookback window before `paid_at`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from attribution.channels import classify_metadata
from attribution.types import (
    Attribution,
    Confidence,
    Journey,
    Method,
    Model,
    PaymentFacts,
    Touch,
)


def resolve(
    payment: PaymentFacts,
    journey: Journey,
    *,
    model: Model = Model.LAST_NON_DIRECT,
    lookback_days: int = 30,
    own_domains: Sequence[str] = (),
) -> Attribution:
    window = (payment.paid_at - timedelta(days=lookback_days), payment.paid_at)

    if journey.session is not None or journey.visitor_known:
        touches = list(journey.visitor_touches)
        method = Method.VISITOR
        if journey.session is not None:
            method = Method.SESSION
            # The session the payment named counts even if its clock ran ahead of paid_at.
            touches.append(journey.session)
        touch = choose(in_window(touches, *window, keep=journey.session), model)
        visitor = journey.session.visitor_id if journey.session else payment.visitor_id
        return _from_touch(Confidence.HIGH, method, model, touch, journey.session, visitor)

    if journey.identity_method is not None:
        touch = choose(in_window(journey.identity_touches, *window), model)
        return _from_touch(Confidence.MEDIUM, journey.identity_method, model, touch, None, None)

    carried = classify_metadata(payment.metadata, own_domains=own_domains)
    if carried is not None:
        landing = payment.metadata.get("landing_url")
        return Attribution(
            confidence=Confidence.LOW,
            method=Method.METADATA,
            model=model,
            source=carried.source,
            medium=carried.medium,
            campaign=carried.campaign,
            landing_page=landing if isinstance(landing, str) else None,
            channel=carried.channel,
        )
    return Attribution(confidence=Confidence.UNKNOWN, method=Method.NONE, model=model)


def in_window(
    touches: Iterable[Touch], start: datetime, end: datetime, *, keep: Touch | None = None
) -> list[Touch]:
    """Distinct touches started within [start, end], plus `keep` whatever its time."""
    chosen = {t.session_id: t for t in touches if start <= t.started_at <= end}
    if keep is not None:
        chosen[keep.session_id] = keep
    return list(chosen.values())


def choose(touches: Sequence[Touch], model: Model) -> Touch | None:
    """The touch the model credits; ties on time are broken by session id."""
    if not touches:
        return None
    ordered = sorted(touches, key=lambda t: (t.started_at, str(t.session_id)))
    if model is Model.FIRST_TOUCH:
        return ordered[0]
    if model is Model.LAST_NON_DIRECT:
        for touch in reversed(ordered):
            if not touch.is_direct:
                return touch
    return ordered[-1]


def _from_touch(
    confidence: Confidence,
    method: Method,
    model: Model,
    touch: Touch | None,
    named: Touch | None,
    visitor_id: uuid.UUID | None,
) -> Attribution:
    if touch is None:
        # The visitor is known but made no session in the window: a direct purchase.
        return Attribution(
            confidence=confidence,
            method=method,
            model=model,
            source="direct",
            medium="none",
            channel="Direct",
            matched_session_id=named.session_id if named else None,
            matched_visitor_id=visitor_id,
        )
    return Attribution(
        confidence=confidence,
        method=method,
        model=model,
        source=touch.source or "direct",
        medium=touch.medium or "none",
        campaign=touch.campaign,
        landing_page=touch.landing_page,
        channel=touch.channel or ("Direct" if touch.is_direct else None),
        matched_session_id=touch.session_id,
        matched_visitor_id=touch.visitor_id,
    )
