"""GET /metrics (Prometheus text; a key with the `admin` scope).

Request counts and latencies are per process; backlog figures come from the
database, so every API process reports the same fleet-wide values.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.state import AppState, app_state
from db.repositories import payments, visit_links
from db.session import unit_of_work

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "metrivo_http_requests_total",
    "HTTP requests.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "metrivo_http_request_seconds",
    "HTTP request latency.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
PENDING = Gauge("metrivo_payments_pending", "Payments waiting for attribution.", registry=REGISTRY)
FAILED = Gauge("metrivo_payments_failed", "Payments whose attribution failed.", registry=REGISTRY)
OLDEST = Gauge(
    "metrivo_attribution_oldest_pending_seconds",
    "Age of the oldest pending payment (the attribution lag bound).",
    registry=REGISTRY,
)
RECENT = Gauge(
    "metrivo_payments_attributed_recent",
    "Payments attributed in the last five minutes (tasks processed).",
    registry=REGISTRY,
)
UNLINKED = Gauge(
    "metrivo_sessions_unlinked",
    "Sessions waiting for the linker (reports count them the slow way).",
    registry=REGISTRY,
)
LAG = Gauge(
    "metrivo_attribution_lag_seconds",
    "Received-to-attributed time of payments attributed in the last five minutes.",
    ["quantile"],
    registry=REGISTRY,
)

_KNOWN = (
    "/api/payments/manual",
    "/api/payments",
    "/api/track",
    "/api/identify",
    "/api/admin/replay",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/js/metrivo.js",
)


def route_label(path: str) -> str:
    """A bounded label: known routes as is, payment ids folded, the rest 'other'."""
    if path in _KNOWN:
        return path
    if path.startswith("/api/payments/"):
        return "/api/payments/{id}"
    return "other"


def observe(path: str, method: str, status: int, seconds: float) -> None:
    route = route_label(path)
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


async def metrics(request: Request) -> Response:
    principal = await authenticate(request)
    principal.require(None, "admin")
    state = app_state(request)
    await run_in_threadpool(_refresh, state)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _refresh(state: AppState) -> None:
    with unit_of_work(state.sessions) as session:
        backlog: dict[str, Any] = payments.backlog(session)
        recent = payments.recent_lags(session, seconds=300)
        unlinked = visit_links.waiting_sessions(session)
    PENDING.set(backlog["pending"])
    FAILED.set(backlog["failed"])
    OLDEST.set(backlog["oldest_pending_seconds"] or 0)
    RECENT.set(len(recent))
    UNLINKED.set(unlinked)
    ordered = sorted(recent)
    for q in (0.5, 0.95, 0.99):
        LAG.labels(str(q)).set(
            ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0
        )
