"""Visit data: visitors, their sessions with acquisition, and identify links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, JSONDocument, UTCDateTime, utcnow


class Visitor(Base):
    """A browser, by the visitor id the tracker keeps in first-party storage."""

    __tablename__ = "visitors"

    website_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("websites.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Which "previous session" column serves each acquisition field (None: any session).
PREVIOUS_COLUMNS: dict[str | None, str] = {
    None: "previous_started_at",
    "source": "previous_source_started_at",
    "medium": "previous_medium_started_at",
    "campaign": "previous_campaign_started_at",
    "channel": "previous_channel_started_at",
    "landing_path": "previous_landing_started_at",
}


class VisitSession(Base):
    """One visit; its first event fixes how the visitor was acquired."""

    __tablename__ = "sessions"
    __table_args__ = (
        # Attribution walks a visitor's sessions backwards from the payment.
        Index("ix_sessions_website_visitor_started", "website_id", "visitor_id", "started_at"),
        # Reports count the visitors of a date range from this index alone (PostgreSQL).
        Index(
            "ix_sessions_report",
            "website_id",
            "started_at",
            postgresql_include=[
                "visitor_id",
                "source",
                "medium",
                "campaign",
                "channel",
                "landing_path",
                "linked",
                *PREVIOUS_COLUMNS.values(),
            ],
        ),
        # The sessions the linker has not reached yet, newest first.
        Index(
            "ix_sessions_unlinked",
            "started_at",
            "website_id",
            postgresql_where=text("NOT linked"),
            sqlite_where=text("NOT linked"),
        ),
    )

    website_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("websites.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    visitor_id: Mapped[uuid.UUID]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pageviews: Mapped[int] = mapped_column(default=0)
    events: Mapped[int] = mapped_column(default=0)
    landing_url: Mapped[str | None] = mapped_column(Text)
    landing_path: Mapped[str | None] = mapped_column(Text)
    referrer: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    term: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str | None] = mapped_column(String(255))
    click_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(64))
    # When the same visitor's previous session started: any session, and one with the same
    # source (medium, ...). A visitor is counted once in a date range through the session
    # whose previous one lies outside the range, so reports count visitors without a
    # DISTINCT over every session. Set by the linker (db/repositories/visit_links.py)
    # shortly after the session is created; `linked` says they are set.
    linked: Mapped[bool] = mapped_column(default=False, server_default=false())
    previous_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_source_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_medium_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_campaign_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_channel_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_landing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Identity(Base):
    """A link between a visitor and an email or custom user id, stored only as a keyed hash."""

    __tablename__ = "identities"
    __table_args__ = (Index("ix_identities_website_visitor", "website_id", "visitor_id"),)

    website_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("websites.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "email" | "user_id"
    value_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    visitor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
