"""Secret API keys: generated here, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import ApiKey, Website

SECRET_KEY_PREFIX = "mk_live_"  # noqa: S105  (a prefix, not a secret)
DISPLAY_PREFIX_LENGTH = len(SECRET_KEY_PREFIX) + 4
# last_used_at is a hint for operators, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def generate_secret_key() -> str:
    # 32 bytes of randomness (256 bits), URL-safe.
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret_key(secret: str) -> str:
    # The key carries 256 random bits, so a fast unsalted hash cannot be brute-forced.
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    session: Session,
    *,
    websites: Sequence[Website],
    scopes: Sequence[str],
    name: str = "",
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is never stored and never shown again."""
    secret = generate_secret_key()
    key = ApiKey(
        id=uuid.uuid4(),
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_secret_key(secret),
        scopes=sorted(set(scopes)),
        websites=list(websites),
    )
    session.add(key)
    session.flush()
    return key, secret


def get(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_all(session: Session, *, include_revoked: bool = True) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return session.scalars(query).all()


def find_active(session: Session, secret: str) -> ApiKey | None:
    """The unrevoked key whose hash matches `secret`, or None."""
    return session.scalar(
        select(ApiKey).where(
            ApiKey.key_hash == hash_secret_key(secret), ApiKey.revoked_at.is_(None)
        )
    )


def revoke(session: Session, key: ApiKey, *, now: datetime | None = None) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        session.flush()
    return key


def mark_used(session: Session, key_id: uuid.UUID, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )
