"""The resolver, as a table of scenarios: each tier, each model, windows, ties, gaps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from attribution.resolver import choose, resolve
from attribution.types import (
    Confidence,
    Journey,
    Method,
    Model,
    PaymentFacts,
    Touch,
)

PAID = datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
V1, V2, V3 = (uuid.UUID(int=i) for i in (1, 2, 3))


def sid(n: int) -> uuid.UUID:
    return uuid.UUID(int=1000 + n)


def t(
    n: int,
    days_before: float,
    source: str | None,
    medium: str | None = None,
    *,
    visitor: uuid.UUID = V1,
    campaign: str | None = None,
) -> Touch:
    default_medium = {"direct": "none", "google": "organic", None: None}.get(source, "referral")
    return Touch(
        session_id=sid(n),
        visitor_id=visitor,
        started_at=PAID - timedelta(days=days_before),
        source=source,
        medium=medium or default_medium,
        campaign=campaign,
        landing_page=f"/landing/{n}",
        channel="Direct" if source == "direct" else "Referral",
    )


@dataclass
class Case:
    name: str
    journey: Journey
    expected_confidence: Confidence
    expected_method: Method
    expected_source: str | None
    expected_session: int | None = None
    model: Model = Model.LAST_NON_DIRECT
    lookback: int = 30
    metadata: dict[str, object] = field(default_factory=dict)
    visitor_id: uuid.UUID | None = None


GOOGLE, DIRECT, NEWS = "google", "direct", "news.example.org"

CASES = [
    # --- high: the payment's own session ---
    Case(
        "session alone",
        Journey(session=t(1, 0.1, GOOGLE)),
        Confidence.HIGH,
        Method.SESSION,
        GOOGLE,
        1,
    ),
    Case(
        "direct checkout session falls back to earlier non-direct",
        Journey(session=t(2, 0.01, DIRECT), visitor_touches=(t(1, 3, NEWS),)),
        Confidence.HIGH,
        Method.SESSION,
        NEWS,
        1,
    ),
    Case(
        "direct checkout session, nothing else: direct",
        Journey(session=t(2, 0.01, DIRECT)),
        Confidence.HIGH,
        Method.SESSION,
        DIRECT,
        2,
    ),
    Case(
        "last touch takes the checkout session even if direct",
        Journey(session=t(2, 0.01, DIRECT), visitor_touches=(t(1, 3, NEWS),)),
        Confidence.HIGH,
        Method.SESSION,
        DIRECT,
        2,
        model=Model.LAST_TOUCH,
    ),
    Case(
        "first touch takes the earliest in the window",
        Journey(session=t(3, 0.01, DIRECT), visitor_touches=(t(1, 20, GOOGLE), t(2, 5, NEWS))),
        Confidence.HIGH,
        Method.SESSION,
        GOOGLE,
        1,
        model=Model.FIRST_TOUCH,
    ),
    Case(
        "first touch ignores sessions before the window",
        Journey(session=t(3, 0.01, DIRECT), visitor_touches=(t(1, 45, GOOGLE), t(2, 5, NEWS))),
        Confidence.HIGH,
        Method.SESSION,
        NEWS,
        2,
        model=Model.FIRST_TOUCH,
    ),
    Case(
        "named session counts even when it started after paid_at (clock skew)",
        Journey(session=t(1, -0.001, GOOGLE)),
        Confidence.HIGH,
        Method.SESSION,
        GOOGLE,
        1,
    ),
    Case(
        "other sessions after paid_at are ignored",
        Journey(session=t(1, 1, DIRECT), visitor_touches=(t(2, -1, NEWS),)),
        Confidence.HIGH,
        Method.SESSION,
        DIRECT,
        1,
    ),
    Case(
        "session beats email evidence",
        Journey(
            session=t(1, 1, NEWS),
            identity_method=Method.EMAIL,
            identity_touches=(t(2, 1, GOOGLE, visitor=V2),),
        ),
        Confidence.HIGH,
        Method.SESSION,
        NEWS,
        1,
    ),
    Case(
        "last non-direct prefers the most recent non-direct",
        Journey(
            session=t(4, 0.01, DIRECT),
            visitor_touches=(t(1, 10, GOOGLE), t(2, 4, NEWS), t(3, 2, DIRECT)),
        ),
        Confidence.HIGH,
        Method.SESSION,
        NEWS,
        2,
    ),
    # --- high: the payment's visitor ---
    Case(
        "visitor with sessions",
        Journey(visitor_known=True, visitor_touches=(t(1, 2, GOOGLE),)),
        Confidence.HIGH,
        Method.VISITOR,
        GOOGLE,
        1,
        visitor_id=V1,
    ),
    Case(
        "visitor known without sessions in the window: direct",
        Journey(visitor_known=True, visitor_touches=()),
        Confidence.HIGH,
        Method.VISITOR,
        DIRECT,
        None,
        visitor_id=V1,
    ),
    Case(
        "visitor's only session outside the lookback: direct",
        Journey(visitor_known=True, visitor_touches=(t(1, 31, GOOGLE),)),
        Confidence.HIGH,
        Method.VISITOR,
        DIRECT,
        None,
        visitor_id=V1,
    ),
    Case(
        "lookback boundary is inclusive",
        Journey(visitor_known=True, visitor_touches=(t(1, 30, GOOGLE),)),
        Confidence.HIGH,
        Method.VISITOR,
        GOOGLE,
        1,
        visitor_id=V1,
    ),
    Case(
        "just past the boundary is out",
        Journey(visitor_known=True, visitor_touches=(t(1, 30.0001, GOOGLE),)),
        Confidence.HIGH,
        Method.VISITOR,
        DIRECT,
        None,
        visitor_id=V1,
    ),
    Case(
        "short lookback of 7 days",
        Journey(visitor_known=True, visitor_touches=(t(1, 8, GOOGLE), t(2, 6, NEWS))),
        Confidence.HIGH,
        Method.VISITOR,
        NEWS,
        2,
        lookback=7,
        visitor_id=V1,
    ),
    Case(
        "1-day lookback keeps only today's",
        Journey(visitor_known=True, visitor_touches=(t(1, 2, GOOGLE), t(2, 0.5, DIRECT))),
        Confidence.HIGH,
        Method.VISITOR,
        DIRECT,
        2,
        lookback=1,
        visitor_id=V1,
    ),
    Case(
        "visitor last touch",
        Journey(visitor_known=True, visitor_touches=(t(1, 5, GOOGLE), t(2, 1, NEWS))),
        Confidence.HIGH,
        Method.VISITOR,
        NEWS,
        2,
        model=Model.LAST_TOUCH,
        visitor_id=V1,
    ),
    Case(
        "visitor first touch",
        Journey(visitor_known=True, visitor_touches=(t(1, 5, GOOGLE), t(2, 1, NEWS))),
        Confidence.HIGH,
        Method.VISITOR,
        GOOGLE,
        1,
        model=Model.FIRST_TOUCH,
        visitor_id=V1,
    ),
    Case(
        "all direct sessions: last non-direct falls back to latest direct",
        Journey(visitor_known=True, visitor_touches=(t(1, 5, DIRECT), t(2, 1, DIRECT))),
        Confidence.HIGH,
        Method.VISITOR,
        DIRECT,
        2,
        visitor_id=V1,
    ),
    Case(
        "session with no source counts as direct",
        Journey(visitor_known=True, visitor_touches=(t(1, 5, NEWS), t(2, 1, None))),
        Confidence.HIGH,
        Method.VISITOR,
        NEWS,
        1,
        visitor_id=V1,
    ),
    Case(
        "ties on start time broken by session id (last)",
        Journey(visitor_known=True, visitor_touches=(t(2, 1, NEWS), t(1, 1, GOOGLE))),
        Confidence.HIGH,
        Method.VISITOR,
        NEWS,
        2,
        visitor_id=V1,
    ),
    Case(
        "ties on start time broken by session id (first)",
        Journey(visitor_known=True, visitor_touches=(t(2, 1, NEWS), t(1, 1, GOOGLE))),
        Confidence.HIGH,
        Method.VISITOR,
        GOOGLE,
        1,
        model=Model.FIRST_TOUCH,
        visitor_id=V1,
    ),
    Case(
        "duplicate touches are counted once",
        Journey(session=t(1, 1, GOOGLE), visitor_touches=(t(1, 1, GOOGLE),)),
        Confidence.HIGH,
        Method.SESSION,
        GOOGLE,
        1,
    ),
    Case(
        "visitor beats metadata",
        Journey(visitor_known=True, visitor_touches=(t(1, 1, NEWS),)),
        Confidence.HIGH,
        Method.VISITOR,
        NEWS,
        1,
        metadata={"utm_source": "bing"},
        visitor_id=V1,
    ),
    # --- medium: email or user id through identify ---
    Case(
        "email with one visitor",
        Journey(identity_method=Method.EMAIL, identity_touches=(t(1, 3, GOOGLE, visitor=V2),)),
        Confidence.MEDIUM,
        Method.EMAIL,
        GOOGLE,
        1,
    ),
    Case(
        "email with several visitors: the model runs over all their sessions",
        Journey(
            identity_method=Method.EMAIL,
            identity_touches=(t(1, 9, GOOGLE, visitor=V2), t(2, 2, NEWS, visitor=V3)),
        ),
        Confidence.MEDIUM,
        Method.EMAIL,
        NEWS,
        2,
    ),
    Case(
        "several visitors, first touch",
        Journey(
            identity_method=Method.EMAIL,
            identity_touches=(t(1, 9, GOOGLE, visitor=V2), t(2, 2, NEWS, visitor=V3)),
        ),
        Confidence.MEDIUM,
        Method.EMAIL,
        GOOGLE,
        1,
        model=Model.FIRST_TOUCH,
    ),
    Case(
        "email matched but no sessions in window: medium direct",
        Journey(identity_method=Method.EMAIL, identity_touches=(t(1, 40, GOOGLE, visitor=V2),)),
        Confidence.MEDIUM,
        Method.EMAIL,
        DIRECT,
        None,
    ),
    Case(
        "user id match",
        Journey(identity_method=Method.USER_ID, identity_touches=(t(1, 1, NEWS, visitor=V2),)),
        Confidence.MEDIUM,
        Method.USER_ID,
        NEWS,
        1,
    ),
    Case(
        "identity sessions after payment are ignored",
        Journey(
            identity_method=Method.EMAIL,
            identity_touches=(t(1, 2, GOOGLE, visitor=V2), t(2, -2, NEWS, visitor=V2)),
        ),
        Confidence.MEDIUM,
        Method.EMAIL,
        GOOGLE,
        1,
    ),
    Case(
        "email beats metadata",
        Journey(identity_method=Method.EMAIL, identity_touches=(t(1, 1, NEWS, visitor=V2),)),
        Confidence.MEDIUM,
        Method.EMAIL,
        NEWS,
        1,
        metadata={"utm_source": "bing"},
    ),
    Case(
        "unknown visitor and session with email match: medium",
        Journey(
            session=None,
            visitor_known=False,
            identity_method=Method.EMAIL,
            identity_touches=(t(1, 1, GOOGLE, visitor=V2),),
        ),
        Confidence.MEDIUM,
        Method.EMAIL,
        GOOGLE,
        1,
        visitor_id=V3,
    ),
    # --- low: metadata only ---
    Case(
        "utm_source in metadata",
        Journey(),
        Confidence.LOW,
        Method.METADATA,
        "newsletter",
        metadata={"utm_source": "Newsletter", "utm_medium": "email"},
    ),
    Case(
        "referrer in metadata",
        Journey(),
        Confidence.LOW,
        Method.METADATA,
        "google",
        metadata={"referrer": "https://www.google.com/"},
    ),
    Case(
        "landing url with gclid in metadata",
        Journey(),
        Confidence.LOW,
        Method.METADATA,
        "google",
        metadata={"landing_url": "https://shop.example.com/?gclid=x"},
    ),
    Case(
        "metadata with unrelated keys only",
        Journey(),
        Confidence.UNKNOWN,
        Method.NONE,
        None,
        metadata={"checkout": "custom"},
    ),
    Case(
        "metadata with non-string utm value",
        Journey(),
        Confidence.UNKNOWN,
        Method.NONE,
        None,
        metadata={"utm_source": 5},
    ),
    Case(
        "unknown visitor id with metadata: low",
        Journey(visitor_known=False),
        Confidence.LOW,
        Method.METADATA,
        "bing",
        metadata={"utm_source": "bing", "utm_medium": "cpc"},
        visitor_id=V3,
    ),
    # --- unknown ---
    Case("nothing at all", Journey(), Confidence.UNKNOWN, Method.NONE, None),
    Case(
        "unknown ids, no email, no metadata",
        Journey(visitor_known=False),
        Confidence.UNKNOWN,
        Method.NONE,
        None,
        visitor_id=V3,
    ),
    Case(
        "unknown, last touch model recorded",
        Journey(),
        Confidence.UNKNOWN,
        Method.NONE,
        None,
        model=Model.LAST_TOUCH,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolver(case: Case) -> None:
    result = resolve(
        PaymentFacts(paid_at=PAID, visitor_id=case.visitor_id, metadata=case.metadata),
        case.journey,
        model=case.model,
        lookback_days=case.lookback,
        own_domains=("shop.example.com",),
    )
    assert result.confidence is case.expected_confidence
    assert result.method is case.expected_method
    assert result.source == case.expected_source
    assert result.model is case.model
    expected_session = sid(case.expected_session) if case.expected_session else None
    if case.expected_method in (Method.SESSION, Method.VISITOR, Method.EMAIL, Method.USER_ID):
        if case.expected_session is not None:
            assert result.matched_session_id == expected_session
            assert result.landing_page == f"/landing/{case.expected_session}"
        elif case.journey.session is None:
            assert result.matched_session_id is None
    if case.expected_confidence is Confidence.UNKNOWN:
        assert result.medium is None
        assert result.channel is None


def test_there_are_at_least_forty_scenarios() -> None:
    assert len(CASES) >= 40


def test_results_are_deterministic_whatever_the_input_order() -> None:
    touches = [t(i, 1, f"s{i}.example") for i in range(6)]
    first = choose(touches, Model.LAST_NON_DIRECT)
    assert all(choose(list(reversed(touches)), Model.LAST_NON_DIRECT) == first for _ in range(3))


def test_visitor_tier_reports_the_payments_visitor_when_no_session_matched() -> None:
    result = resolve(PaymentFacts(paid_at=PAID, visitor_id=V1), Journey(visitor_known=True))
    assert result.matched_visitor_id == V1
    assert (result.source, result.medium, result.channel) == ("direct", "none", "Direct")
