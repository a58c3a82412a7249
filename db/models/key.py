from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JSONDocument, UTCDateTime, utcnow
from db.models.website import Website

SCOPES = ("payments:write", "payments:read", "identify:write", "reports:read", "admin")


class ApiKey(Base):
    """A secret key: only its SHA-256 is stored, with a short prefix kept for display."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    websites: Mapped[list[Website]] = relationship(secondary="api_key_websites", lazy="selectin")

    @property
    def website_ids(self) -> list[uuid.UUID]:
        return [w.id for w in self.websites]


class ApiKeyWebsite(Base):
    """The websites a key is authorized for."""

    __tablename__ = "api_key_websites"

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    website_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("websites.id", ondelete="CASCADE"), primary_key=True, index=True
    )
