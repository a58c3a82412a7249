"""Reports: GET /api/reports/revenue (JSON or CSV) and GET /api/reports/payments."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import ApiError, not_found
from api.payments import payment_detail_view
from api.responses import JSONResponse
from api.state import AppState, app_state
from db.models import ATTRIBUTION_CONFIDENCES
from db.repositories import payments, reports, websites
from db.repositories.reports import GROUPS, Group, ReportQuery
from db.session import unit_of_work

T = TypeVar("T")

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
RATE_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")


async def revenue(request: Request) -> Response:
    principal = await authenticate(request)
    params = request.query_params
    errors: list[dict[str, str]] = []
    website_id = _uuid(params.get("website_id"), errors)
    group_by = params.get("group_by", "source")
    if group_by not in GROUPS:
        errors.append(
            {"field": "group_by", "message": f"group_by must be one of: {', '.join(GROUPS)}"}
        )
    confidence = params.get("confidence") or None
    if confidence is not None and confidence not in ATTRIBUTION_CONFIDENCES:
        errors.append(
            {
                "field": "confidence",
                "message": f"confidence must be one of: {', '.join(ATTRIBUTION_CONFIDENCES)}",
            }
        )
    output = params.get("format", "json")
    if output not in ("json", "csv"):
        errors.append({"field": "format", "message": "format must be json or csv"})
    for name in ("source", "campaign"):
        if "\x00" in params.get(name, ""):
            errors.append({"field": name, "message": f"{name} must not contain NUL characters"})
    first = _date(params.get("from"), "from", errors)
    last = _date(params.get("to"), "to", errors)
    if errors:
        raise ApiError(400, "invalid_request", "Invalid report parameters.", details=errors)
    assert website_id is not None
    principal.require(website_id, "reports:read")
    state = app_state(request)
    site = await run_in_threadpool(_website, state, website_id)
    zone = ZoneInfo(site["timezone"])
    today = datetime.now(zone).date()
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ApiError(
            400,
            "invalid_request",
            "Invalid report parameters.",
            [{"field": "from", "message": "from must not be after to"}],
        )
    if (last - first).days >= MAX_DAYS:
        raise ApiError(
            400,
            "invalid_request",
            "Invalid report parameters.",
            [{"field": "from", "message": f"at most {MAX_DAYS} days per report"}],
        )
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    query = ReportQuery(
        website_id=website_id,
        start=start,
        end=datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC),
        group_by=group_by,
        timezone=site["timezone"],
        utc_offset_minutes=int(
            (start.astimezone(zone).utcoffset() or timedelta()).total_seconds() // 60
        ),
        source=params.get("source") or None,
        campaign=params.get("campaign") or None,
        confidence=confidence,
    )
    groups, totals = await _report(state, query)
    rows = _ordered(groups, query, first, last)
    body = {
        "success": True,
        "website_id": website_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": site["timezone"],
        "group_by": group_by,
        "currencies": reports.currencies([totals]),
        "rows": [_row(g) for g in rows],
        "totals": {k: v for k, v in _row(totals).items() if k not in ("key", "unattributed")},
    }
    if output == "csv":
        return _csv(body)
    return JSONResponse(body)


async def _report(state: AppState, query: ReportQuery) -> tuple[list[Group], Group]:
    """The report's independent queries run at once, each on its own connection."""

    def run(part: Callable[[Session, ReportQuery], T]) -> Awaitable[T]:
        def in_unit_of_work() -> T:
            with unit_of_work(state.sessions) as session:
                return part(session, query)

        return run_in_threadpool(in_unit_of_work)

    if query.group_by == "confidence":
        amounts, payers = await asyncio.gather(
            run(reports.payment_amounts), run(reports.paying_visitors)
        )
        return reports.combine(amounts, payers, None, None)
    if await run(reports.linked_counts_apply):
        amounts, payers, (visitors, all_visitors) = await asyncio.gather(
            run(reports.payment_amounts),
            run(reports.paying_visitors),
            run(reports.linked_visitors),
        )
    else:  # the two DISTINCT counts are the slow part: each on its own connection
        amounts, payers, visitors, all_visitors = await asyncio.gather(
            run(reports.payment_amounts),
            run(reports.paying_visitors),
            run(reports.distinct_visitors_by_key),
            run(reports.distinct_visitors),
        )
    return reports.combine(amounts, payers, visitors, all_visitors)


def _website(state: AppState, website_id: uuid.UUID) -> dict[str, Any]:
    with unit_of_work(state.sessions) as session:
        site = websites.get(session, website_id)
        if site is None:
            raise not_found("No such website.")
        return site.to_dict()


def _ordered(groups: list[Group], query: ReportQuery, first: date, last: date) -> list[Group]:
    if query.group_by == "day":
        by_day = {g.key: g for g in groups}
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        return [by_day.get(d.isoformat()) or Group(d.isoformat(), False, visitors=0) for d in days]
    if query.group_by == "confidence":
        order = {c: i for i, c in enumerate(("high", "medium", "low", "unknown", "pending"))}
        return sorted(groups, key=lambda g: order.get(g.key or "", 99))

    def rank(g: Group) -> tuple[bool, Decimal, int, str]:
        net = sum((v - g.refunded.get(c, Decimal(0)) for c, v in g.gross.items()), Decimal(0))
        return (g.unattributed, -net, -(g.visitors or 0), g.key or "")

    return sorted(groups, key=rank)


def _row(group: Group) -> dict[str, Any]:
    net = {c: v - group.refunded.get(c, Decimal(0)) for c, v in sorted(group.gross.items())}
    visitors = group.visitors
    return {
        "key": group.key,
        "unattributed": group.unattributed,
        "revenue": net,
        "gross": dict(sorted(group.gross.items())),
        "refunded": dict(sorted(group.refunded.items())),
        "payments": group.payments,
        "refunds": group.refunds,
        "paying_visitors": group.paying_visitors,
        "visitors": visitors,
        "conversion_rate": (
            float((Decimal(group.paying_visitors) / visitors).quantize(RATE_PLACES))
            if visitors
            else None
        ),
        "revenue_per_visitor": (
            {c: (v / visitors).quantize(MONEY_PLACES, ROUND_HALF_EVEN) for c, v in net.items()}
            if visitors
            else None
        ),
    }


def _csv(body: dict[str, Any]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            body["group_by"],
            "unattributed",
            "currency",
            "revenue",
            "gross",
            "refunded",
            "payments",
            "refunds",
            "paying_visitors",
            "visitors",
            "conversion_rate",
            "revenue_per_visitor",
        ]
    )
    for row in [*body["rows"], {"key": "TOTAL", "unattributed": False, **body["totals"]}]:
        for currency in sorted(row["gross"]) or [""]:
            per_visitor = row["revenue_per_visitor"] or {}
            writer.writerow(
                [
                    row["key"] if row["key"] is not None else "",
                    "yes" if row["unattributed"] else "",
                    currency,
                    row["revenue"].get(currency, ""),
                    row["gross"].get(currency, ""),
                    row["refunded"].get(currency, 0) if currency else "",
                    row["payments"],
                    row["refunds"],
                    row["paying_visitors"],
                    "" if row["visitors"] is None else row["visitors"],
                    "" if row["conversion_rate"] is None else row["conversion_rate"],
                    per_visitor.get(currency, ""),
                ]
            )
    name = f"metrivo-revenue-{body['group_by']}-{body['from']}-{body['to']}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def recent_payments(request: Request) -> Response:
    principal = await authenticate(request)
    errors: list[dict[str, str]] = []
    website_id = _uuid(request.query_params.get("website_id"), errors)
    try:
        limit = int(request.query_params.get("limit", "20"))
        if not 1 <= limit <= 200:
            raise ValueError
    except ValueError:
        errors.append({"field": "limit", "message": "limit must be 1 to 200"})
        limit = 0
    if errors:
        raise ApiError(400, "invalid_request", "Invalid parameters.", details=errors)
    assert website_id is not None
    principal.require(website_id, "reports:read")
    state = app_state(request)

    def load() -> list[dict[str, Any]]:
        with unit_of_work(state.sessions) as session:
            rows = payments.list_page(session, website_id=website_id, limit=limit)
        return [payment_detail_view(r) for r in rows]

    return JSONResponse(
        {"success": True, "payments": await run_in_threadpool(load), "next_cursor": None}
    )


async def list_websites(request: Request) -> Response:
    """GET /api/websites: the websites this key is authorized for."""
    principal = await authenticate(request)
    state = app_state(request)

    def load() -> list[dict[str, Any]]:
        with unit_of_work(state.sessions) as session:
            found = [websites.get(session, w) for w in sorted(principal.website_ids, key=str)]
            return [
                {k: v for k, v in s.to_dict().items() if k in ("id", "name", "domains", "timezone")}
                for s in found
                if s is not None
            ]

    return JSONResponse({"success": True, "websites": await run_in_threadpool(load)})


def _uuid(raw: str | None, errors: list[dict[str, str]]) -> uuid.UUID | None:
    if not raw:
        errors.append({"field": "website_id", "message": "website_id is required"})
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        errors.append({"field": "website_id", "message": "website_id is not a UUID"})
        return None


EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


def _date(raw: str | None, name: str, errors: list[dict[str, str]]) -> date | None:
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        errors.append({"field": name, "message": f"{name} must be a date, YYYY-MM-DD"})
        return None
    if not EARLIEST <= value <= LATEST:
        errors.append({"field": name, "message": f"{name} must be between 2000 and 2999"})
        return None
    return value
