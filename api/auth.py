"""Secret-key authentication with a short-lived cache of key lookups.

A key is looked up by the SHA-256 of the bearer token: the secret itself is never
stored or compared, only its hash, by an index lookup. Lookups (including misses)
are cached for `KEY_CACHE_SECONDS`, so a revocation takes effect within that many
seconds on every API process. Every authenticated request counts against the
key's rate limit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from threading import Lock

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.errors import forbidden, unauthorized
from api.ratelimit import rate_limiter
from api.state import app_state
from db.repositories import keys
from db.session import unit_of_work

KEY_CACHE_SECONDS = 5.0
KEY_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Principal:
    """The key a request authenticated with."""

    key_id: uuid.UUID
    scopes: frozenset[str]
    website_ids: frozenset[uuid.UUID]

    def require(self, website_id: uuid.UUID | None, *any_of: str) -> None:
        """403 unless the key has one of the scopes and is authorized for the website."""
        if not self.scopes.intersection(any_of):
            raise forbidden(f"This API key lacks the {' or '.join(any_of)} scope.")
        if website_id is not None and website_id not in self.website_ids:
            raise forbidden(
                "This API key is not authorized for this website_id (or no such website exists)."
            )


class KeyCache:
    def __init__(self, sessions: sessionmaker[Session], ttl: float = KEY_CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = Lock()

    def lookup(self, token: str) -> Principal | None:
        digest = keys.hash_secret_key(token)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > now:
            return entry[1]
        principal = self._load(token)
        with self._lock:
            if len(self._entries) >= KEY_CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (now + self._ttl, principal)
        return principal

    def _load(self, token: str) -> Principal | None:
        with unit_of_work(self._sessions) as session:
            key = keys.find_active(session, token)
            if key is None:
                return None
            keys.mark_used(session, key.id)
            return Principal(
                key_id=key.id, scopes=frozenset(key.scopes), website_ids=frozenset(key.website_ids)
            )

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(keys.hash_secret_key(token))
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """The principal of a secret-key request; 401 if the key is missing, unknown or revoked,
    429 if it is over its rate limit."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized("Missing API key.")
    cache: KeyCache = app_state(request).key_cache
    hit, principal = cache.cached(token)
    if not hit:
        principal = await run_in_threadpool(cache.lookup, token)
    if principal is None:
        raise unauthorized("Invalid or revoked API key.")
    await rate_limiter(request).secret_key(principal.key_id)
    return principal
