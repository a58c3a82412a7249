"""Liveness and readiness."""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.responses import JSONResponse
from api.state import AppState, app_state

logger = logging.getLogger(__name__)


async def healthz(_request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The process can do its work: the database and the broker answer."""
    state = app_state(request)
    checks = {
        "database": await run_in_threadpool(_check_database, state),
        "broker": await run_in_threadpool(_check_broker, state),
    }
    ready = all(result == "ok" for result in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )


def _check_database(state: AppState) -> str:
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", type(exc).__name__)
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _check_broker(state: AppState) -> str:
    try:
        state.publisher.ping()
    except Exception as exc:
        logger.warning("readiness: broker unreachable: %s", type(exc).__name__)
        return f"unreachable ({type(exc).__name__})"
    return "ok"
