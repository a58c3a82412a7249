"""Public-key requests from browsers: the website by its public key, and its origins."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from threading import Lock
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError, unauthorized
from api.ratelimit import rate_limiter
from api.state import app_state
from db.repositories import websites
from db.session import unit_of_work

SITE_CACHE_SECONDS = 30.0
SITE_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class PublicSite:
    id: uuid.UUID
    domains: tuple[str, ...]


class SiteCache:
    """Public key -> website, cached briefly (misses too, so floods of bad keys stay cheap)."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float = SITE_CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._entries: dict[str, tuple[float, PublicSite | None]] = {}
        self._lock = Lock()

    def cached(self, public_key: str) -> tuple[bool, PublicSite | None]:
        entry = self._entries.get(public_key)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def lookup(self, public_key: str) -> PublicSite | None:
        with unit_of_work(self._sessions) as session:
            site = websites.get_by_public_key(session, public_key)
            found = PublicSite(site.id, tuple(site.domains)) if site else None
        with self._lock:
            if len(self._entries) >= SITE_CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[public_key] = (time.monotonic() + self._ttl, found)
        return found


async def site_for_public_key(
    request: Request, public_key: str | None, *, identify: uuid.UUID | None = None
) -> PublicSite:
    """The website of a public key; 401 when it is missing or unknown, 429 when it is over
    its rate limit (for an identify of visitor `identify`, also that visitor's)."""
    if not public_key:
        raise unauthorized("Missing publicKey.")
    cache: SiteCache = app_state(request).site_cache
    hit, site = cache.cached(public_key)
    if not hit:
        site = await run_in_threadpool(cache.lookup, public_key)
    if site is None:
        raise ApiError(
            401, "unauthorized", "Unknown publicKey: copy it from your website settings."
        )
    await rate_limiter(request).public_key(site.id, identify)
    return site


def host_allowed(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def check_origin(request: Request, site: PublicSite) -> None:
    """403 for a browser request from an origin outside the website's domains.

    A request without `Origin` (a server-side call) is accepted.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        host = None
    if not host or not host_allowed(host, site.domains):
        raise ApiError(
            403,
            "forbidden_origin",
            "This origin is not one of the website's domains; add it with "
            "`metrivo website update ID --domain …`.",
        )


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def preflight(request: Request) -> Response:
    """CORS preflight for the browser endpoints; the real request checks the origin."""
    return Response(
        status_code=204,
        headers={
            **cors_headers(request),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
        },
    )
