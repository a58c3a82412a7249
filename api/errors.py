"""The JSON error format: `{"success": false, "error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.responses import JSONResponse

logger = logging.getLogger(__name__)

# What the database raises when it cannot be reached (or the pool is exhausted).
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


class ApiError(Exception):
    """An error a client caused (or must wait out), with the status to answer."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def unauthorized(message: str = "Invalid or missing API key.") -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message + " Send `Authorization: Bearer <secret key>`.",
        headers={"WWW-Authenticate": 'Bearer realm="metrivo"'},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str = "Not found.") -> ApiError:
    return ApiError(404, "not_found", message)


def service_unavailable(message: str, retry_after: int = 5) -> ApiError:
    return ApiError(503, "service_unavailable", message, headers={"Retry-After": str(retry_after)})


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"success": False, "error": error}, status_code, headers=headers)


async def handle_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def handle_database_down(request: Request, exc: Exception) -> Response:
    logger.error(
        "database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return error_response(
        503,
        "service_unavailable",
        "The database is unavailable; retry later.",
        headers={"Retry-After": "5"},
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Internal server error; see the server logs.")
