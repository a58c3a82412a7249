"""GET /js/metrivo.js: the browser tracker, served as is with caching headers."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

TRACKER = Path(__file__).parent / "static" / "metrivo.js"
# Browsers and CDNs may reuse it for an hour, then revalidate with the ETag.
CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"


@cache
def _tracker() -> tuple[bytes, str]:
    source = TRACKER.read_bytes()
    return source, '"' + hashlib.sha256(source).hexdigest()[:32] + '"'


async def tracker_js(request: Request) -> Response:
    source, etag = _tracker()
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(source, media_type="application/javascript; charset=utf-8", headers=headers)
