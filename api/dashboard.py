"""GET /dashboard (and, in development, /demo) with their static files, under a strict CSP."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from api.errors import not_found
from api.state import app_state
from config import Environment

STATIC = Path(__file__).parent / "static"
FILES = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "application/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "demo.html": "text/html; charset=utf-8",
    "demo.js": "application/javascript; charset=utf-8",
}
# The page talks only to this API; the secret key lives in sessionStorage, so no
# third-party script may ever run next to it.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def dashboard(_request: Request) -> Response:
    return Response(
        _read("dashboard.html"), media_type=FILES["dashboard.html"], headers=SECURITY_HEADERS
    )


async def demo(request: Request) -> Response:
    """A page carrying the tracker, for trying Metrivo end to end (development only)."""
    if app_state(request).settings.environment is not Environment.DEVELOPMENT:
        raise not_found()
    return Response(_read("demo.html"), media_type=FILES["demo.html"], headers=SECURITY_HEADERS)


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES or name.endswith(".html"):
        raise not_found()
    return Response(_read(name), media_type=FILES[name], headers=SECURITY_HEADERS)
