"""The Starlette application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from celery import Celery
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from api import (
    admin,
    dashboard,
    health,
    identify,
    metrics,
    openapi,
    payments,
    reports,
    sites,
    track,
    tracker,
)
from api.auth import KeyCache
from api.batching import GroupCommitter
from api.errors import (
    DATABASE_DOWN,
    ApiError,
    handle_api_error,
    handle_database_down,
    handle_http_exception,
    handle_unexpected,
)
from api.logs import configure_logging
from api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from api.ratelimit import RateLimiter
from api.sites import SiteCache
from api.state import AppState
from config import Settings, get_settings
from db.session import make_engine, make_session_factory
from workers.app import create_celery
from workers.enqueue import BackgroundPublisher, Publisher

ROUTES = [
    Route("/healthz", health.healthz, methods=["GET", "HEAD"]),
    Route("/readyz", health.readyz, methods=["GET", "HEAD"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/api/payments/manual", payments.create_manual_payment, methods=["POST"]),
    Route("/api/payments", payments.list_payments, methods=["GET"]),
    Route("/api/payments/{payment_id:uuid}", payments.get_payment, methods=["GET"]),
    Route("/api/track", track.track, methods=["POST"]),
    Route("/api/track", sites.preflight, methods=["OPTIONS"]),
    Route("/api/identify", identify.identify, methods=["POST"]),
    Route("/api/identify", sites.preflight, methods=["OPTIONS"]),
    Route("/js/metrivo.js", tracker.tracker_js, methods=["GET", "HEAD"]),
    Route("/api/admin/replay", admin.replay_payments, methods=["POST"]),
    Route("/metrics", metrics.metrics, methods=["GET"]),
    Route("/api/websites", reports.list_websites, methods=["GET"]),
    Route("/api/reports/revenue", reports.revenue, methods=["GET"]),
    Route("/api/reports/payments", reports.recent_payments, methods=["GET"]),
    Route("/dashboard", dashboard.dashboard, methods=["GET"]),
    Route("/demo", dashboard.demo, methods=["GET"]),
    Route("/static/{name}", dashboard.static_file, methods=["GET"]),
]


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    celery: Celery | None = None,
) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = engine or make_engine(settings)
    celery = celery or create_celery(settings)
    sessions = make_session_factory(engine)
    publisher = Publisher(celery)
    background_publisher = BackgroundPublisher(
        publisher, window_seconds=settings.publish_window_ms / 1000
    )
    # SQLite has one writer; PostgreSQL overlaps a commit with the next batch.
    writers = 1 if engine.dialect.name == "sqlite" else 2
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        celery=celery,
        publisher=publisher,
        background_publisher=background_publisher,
        key_cache=KeyCache(sessions),
        payment_committer=GroupCommitter(
            partial(payments.record_payments, sessions, background_publisher),
            max_size=settings.batch_max_size,
            window_seconds=settings.batch_window_ms / 1000,
            concurrency=writers,
            name="payments",
        ),
        site_cache=SiteCache(sessions),
        visit_committer=GroupCommitter(
            partial(track.record_visits, sessions, background_publisher),
            max_size=settings.batch_max_size,
            window_seconds=settings.batch_window_ms / 1000,
            concurrency=writers,
            name="visits",
        ),
    )

    rate_limiter = RateLimiter.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What is loaded by now lives as long as the process: keep it out of the cyclic
        # garbage collector's sight, so that a full collection scans only what requests
        # create. Without this, each full collection held the event loop for ~90 ms
        # (bench/profile-notes.md).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        await app.state.rate_limiter.close()
        await state.payment_committer.close()
        await state.visit_committer.close()
        state.background_publisher.close()
        engine.dispose()

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            **{error: handle_database_down for error in DATABASE_DOWN},
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.metrivo = state
    app.state.rate_limiter = rate_limiter
    return app
