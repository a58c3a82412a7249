from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Website
from db.models.website import DEFAULT_LOOKBACK_DAYS

PUBLIC_KEY_PREFIX = "pk_"


def generate_public_key() -> str:
    return PUBLIC_KEY_PREFIX + secrets.token_urlsafe(18)


def create(
    session: Session,
    *,
    name: str,
    domains: Sequence[str],
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    attribution_model: str = "last_non_direct",
    website_id: uuid.UUID | None = None,
) -> Website:
    website = Website(
        id=website_id or uuid.uuid4(),
        name=name,
        domains=list(domains),
        public_key=generate_public_key(),
        lookback_days=lookback_days,
        attribution_model=attribution_model,
    )
    session.add(website)
    session.flush()
    return website


def get(session: Session, website_id: uuid.UUID) -> Website | None:
    return session.get(Website, website_id)


def get_by_public_key(session: Session, public_key: str) -> Website | None:
    return session.scalar(select(Website).where(Website.public_key == public_key))


def list_all(session: Session) -> Sequence[Website]:
    return session.scalars(select(Website).order_by(Website.created_at, Website.id)).all()


def update(
    session: Session,
    website: Website,
    *,
    name: str | None = None,
    domains: Sequence[str] | None = None,
    lookback_days: int | None = None,
    attribution_model: str | None = None,
    timezone: str | None = None,
) -> Website:
    if timezone is not None:
        website.timezone = timezone
    if name is not None:
        website.name = name
    if domains is not None:
        website.domains = list(domains)
    if lookback_days is not None:
        website.lookback_days = lookback_days
    if attribution_model is not None:
        website.attribution_model = attribution_model
    session.flush()
    return website
