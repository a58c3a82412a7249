"""Payments: the row is the attribution job record (a transactional outbox)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, ExactDecimal, JSONDocument, UTCDateTime, utcnow

PAYMENT_STATUSES = (
    "paid",
    "pending",
    "failed",
    "refunded",
    "partially_refunded",
    "disputed",
    "canceled",
)
# The job state of a payment's attribution.
ATTRIBUTION_STATUSES = ("pending", "attributed", "failed")
ATTRIBUTION_CONFIDENCES = ("pending", "high", "medium", "low", "unknown")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("website_id", "provider", "provider_payment_id"),
        CheckConstraint(_in("status", PAYMENT_STATUSES), name="status_known"),
        CheckConstraint(_in("attribution_status", ATTRIBUTION_STATUSES), name="attribution_known"),
        CheckConstraint(
            _in("attribution_confidence", ATTRIBUTION_CONFIDENCES), name="confidence_known"
        ),
        # The sweeper finds rows left pending or due for another try.
        Index("ix_payments_attribution_queue", "attribution_status", "enqueued_at"),
        # Listing and reports by time.
        Index("ix_payments_website_received", "website_id", "received_at", "id"),
        # Reports sum a date range from this index alone (PostgreSQL).
        Index(
            "ix_payments_report",
            "website_id",
            "paid_at",
            postgresql_include=[
                "status",
                "currency",
                "amount",
                "attribution_confidence",
                "attributed_source",
                "attributed_medium",
                "attributed_campaign",
                "attributed_channel",
                "attributed_landing_page",
                "matched_visitor_id",
            ],
        ),
        # Late evidence (a session, a visitor, an identify) finds its payments.
        Index("ix_payments_website_session", "website_id", "session_id"),
        Index("ix_payments_website_visitor", "website_id", "visitor_id"),
        Index("ix_payments_website_email", "website_id", "customer_email_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    website_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(64))
    provider_payment_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    customer_email_hash: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    visitor_id: Mapped[uuid.UUID | None]
    session_id: Mapped[uuid.UUID | None]
    payment_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Attribution result.
    attribution_status: Mapped[str] = mapped_column(String(16), default="pending")
    attribution_confidence: Mapped[str] = mapped_column(String(16), default="pending")
    attribution_method: Mapped[str | None] = mapped_column(String(32))
    attribution_model: Mapped[str | None] = mapped_column(String(32))
    attributed_source: Mapped[str | None] = mapped_column(String(255))
    attributed_medium: Mapped[str | None] = mapped_column(String(255))
    attributed_campaign: Mapped[str | None] = mapped_column(String(255))
    attributed_landing_page: Mapped[str | None] = mapped_column(Text)
    attributed_channel: Mapped[str | None] = mapped_column(String(64))
    matched_session_id: Mapped[uuid.UUID | None]
    matched_visitor_id: Mapped[uuid.UUID | None]
    attributed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Job state.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attribution_attempts: Mapped[int] = mapped_column(default=0)
    attribution_last_error: Mapped[str | None] = mapped_column(Text)


class PaymentEvent(Base):
    """The history of a payment: its first status and every change after it."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(32))
    previous_status: Mapped[str | None] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
