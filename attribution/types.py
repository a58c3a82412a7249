"""The plain values the resolver works on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Confidence(StrEnum):
    HIGH = "high"  # the payment named a recorded session or visitor
    MEDIUM = "medium"  # its email (or user id) matched identify records
    LOW = "low"  # only acquisition data carried in its metadata
    UNKNOWN = "unknown"  # nothing matched


class Method(StrEnum):
    SESSION = "session"
    VISITOR = "visitor"
    EMAIL = "email"
    USER_ID = "user_id"
    METADATA = "metadata"
    NONE = "none"


class Model(StrEnum):
    LAST_NON_DIRECT = "last_non_direct"
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"


@dataclass(frozen=True, slots=True)
class Touch:
    """A session as attribution sees it: when it started and how it was acquired."""

    session_id: uuid.UUID
    visitor_id: uuid.UUID
    started_at: datetime
    source: str | None
    medium: str | None
    campaign: str | None = None
    landing_page: str | None = None
    channel: str | None = None

    @property
    def is_direct(self) -> bool:
        return self.source in (None, "", "direct")


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What the payment itself says."""

    paid_at: datetime
    session_id: uuid.UUID | None = None
    visitor_id: uuid.UUID | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Journey:
    """What the recorded visit data says about a payment.

    `session` is the payment's own session if it was recorded; `visitor_known`
    tells whether its visitor was; `visitor_touches` are the sessions of that
    visitor (and of the session's visitor); `identity_method` is set when its
    email or user id matched identify records, whose visitors' sessions are
    `identity_touches`.
    """

    session: Touch | None = None
    visitor_known: bool = False
    visitor_touches: tuple[Touch, ...] = ()
    identity_method: Method | None = None
    identity_touches: tuple[Touch, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribution:
    confidence: Confidence
    method: Method
    model: Model
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    landing_page: str | None = None
    channel: str | None = None
    matched_session_id: uuid.UUID | None = None
    matched_visitor_id: uuid.UUID | None = None
