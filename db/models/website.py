from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, JSONDocument, UTCDateTime, utcnow

ATTRIBUTION_MODELS = ("last_non_direct", "first_touch", "last_touch")
DEFAULT_LOOKBACK_DAYS = 30


class Website(Base):
    """A site whose visits are tracked and whose payments are attributed."""

    __tablename__ = "websites"
    __table_args__ = (
        CheckConstraint("lookback_days BETWEEN 1 AND 365", name="lookback_days_range"),
        CheckConstraint(
            "attribution_model IN ('last_non_direct', 'first_touch', 'last_touch')",
            name="attribution_model_known",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # Hostnames (lowercase, no scheme); their subdomains belong to the site too.
    domains: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    lookback_days: Mapped[int] = mapped_column(default=DEFAULT_LOOKBACK_DAYS)
    attribution_model: Mapped[str] = mapped_column(String(32), default="last_non_direct")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "domains": list(self.domains),
            "public_key": self.public_key,
            "lookback_days": self.lookback_days,
            "attribution_model": self.attribution_model,
            "timezone": self.timezone,
            "created_at": self.created_at.isoformat(),
        }
