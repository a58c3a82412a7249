"""POST /api/admin/replay: what `metrivo replay` does, for one website, over HTTP."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import ApiError
from api.responses import JSONResponse
from api.schemas import validation_details
from api.state import app_state
from workers.replay import ReplayFilter, replay


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    website_id: uuid.UUID
    status: Literal["failed", "pending", "unknown", "all"] = "failed"
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Read a time without an offset as UTC; refuse what no payment can have."""
        if value is None:
            return None
        if not 2000 <= value.year <= 2999:
            raise ValueError("must be a time between 2000 and 2999")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def replay_payments(request: Request) -> Response:
    principal = await authenticate(request)
    principal.require(None, "admin")
    try:
        data = ReplayRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_payload", "Invalid replay request.", validation_details(exc)
        ) from None
    principal.require(data.website_id, "admin")
    state = app_state(request)
    selection = ReplayFilter(
        status=data.status, website_id=data.website_id, since=data.since, until=data.until
    )
    result = await run_in_threadpool(
        replay, state.sessions, state.publisher, selection, dry_run=data.dry_run
    )
    return JSONResponse({"success": True, "dry_run": data.dry_run, **asdict(result)})
