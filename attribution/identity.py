"""How emails and user ids are kept: only as HMAC-SHA256 keyed with METRIVO_SECRET."""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def email_hash(key: bytes, email: str) -> str:
    """The hash an email is stored and matched under (trimmed and lowercased first)."""
    return keyed_hash(key, email.strip().lower())


def user_id_hash(key: bytes, user_id: str) -> str:
    # A separate domain, so a user id that looks like an email never matches one.
    return keyed_hash(key, "user_id:" + user_id.strip())
