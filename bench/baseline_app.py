"""The baseline: a bare Starlette app that parses a JSON body and answers JSON.

Served by uvicorn with the same settings as Metrivo's API, it is the fastest thing
this machine does with an HTTP JSON request; Metrivo's intake is judged as a ratio
of its requests per second. It echoes the payment back, so the response is about
as large as Metrivo's and the load script reads it the same way.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    payment = orjson.loads(await request.body())
    body = orjson.dumps({"success": True, "duplicate": False, "payment": payment})
    return Response(body, media_type="application/json")


async def healthz(_request: Request) -> Response:
    return Response(b'{"ok": true}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/api/payments/manual", echo, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
