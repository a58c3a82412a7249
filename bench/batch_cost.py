"""The intake's database write, timed in-process by batch size.

Calls the API's own batch writers (`api.payments.record_payments`,
`api.track.record_visits`) on the benchmark's database with batches of 1 to 200:
their wall and CPU time per batch, and (in separate calls, with SQLAlchemy's
statement log on) how many statements SQLAlchemy had to compile rather than take
from its cache, and how long that took. Group commit is meant to share a batch's
fixed costs; this shows whether the cost per row falls as batches grow.
Run by `bench/run --profile`; on its own, against a migrated database (it adds a
website of its own):

    DATABASE_URL=postgresql+psycopg://... REDIS_URL=... METRIVO_SECRET=... \
        .venv/bin/python -m bench.batch_cost
"""

from __future__ import annotations

import logging
import re
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from api.payments import record_payments
from api.track import Visit, record_visits
from config import Settings, get_settings
from db.base import utcnow
from db.repositories import websites
from db.repositories.payments import NewPayment
from db.session import make_engine, make_session_factory, unit_of_work

SIZES = (1, 4, 16, 64, 200)
ROUNDS = 15
ARRIVALS = (
    ("https://shop.example.com/", "https://www.google.com/"),
    ("https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email", None),
    ("https://shop.example.com/", None),
)


class _NoPublisher:
    """Stands in for the background publisher: the queue is not what is timed here."""

    def submit(self, payment_ids: Sequence[uuid.UUID]) -> None:
        pass


def _payments(website_id: uuid.UUID, n: int) -> list[NewPayment]:
    return [
        NewPayment(
            website_id=website_id,
            provider="manual",
            provider_payment_id=f"cost-{uuid.uuid4().hex}",
            amount=Decimal(4900),
            currency="USD",
            status="paid",
            paid_at=utcnow(),
            customer_email_hash="0" * 64,
            visitor_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            metadata={"checkout": "custom"},
        )
        for _ in range(n)
    ]


def _visits(website_id: uuid.UUID, n: int) -> list[Visit]:
    return [
        Visit(
            website_id=website_id,
            domains=("shop.example.com",),
            visitor_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            is_pageview=True,
            url=ARRIVALS[i % len(ARRIVALS)][0],
            referrer=ARRIVALS[i % len(ARRIVALS)][1],
            received_at=utcnow(),
        )
        for i in range(n)
    ]


def _time(call: Callable[[], object]) -> tuple[float, float]:
    """Wall and this thread's CPU milliseconds of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000


class _StatementLog(logging.Handler):
    """Reads SQLAlchemy's "[generated in 0.00123s]" / "[cached since ...]" statement stats."""

    GENERATED = re.compile(r"^\[generated in ([0-9.]+)s")

    def __init__(self) -> None:
        super().__init__()
        self.compiled = 0
        self.compile_ms = 0.0
        self.cached = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if match := self.GENERATED.match(message):
            self.compiled += 1
            self.compile_ms += float(match[1]) * 1000
        elif message.startswith("[cached since"):
            self.cached += 1


def _compiles(call: Callable[[], object], calls: int = 3) -> dict[str, float]:
    """Statements compiled (not found in SQLAlchemy's cache) per call, and their time."""
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    handler, level, propagate = _StatementLog(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        for _ in range(calls):
            call()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return {
        "compiled": handler.compiled / calls,
        "compile_ms": handler.compile_ms / calls,
        "cached": handler.cached / calls,
    }


def measure(settings: Settings, website_id: str) -> list[dict[str, Any]]:
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    site = uuid.UUID(website_id)
    publisher: Any = _NoPublisher()
    med = statistics.median
    rows = []
    try:
        for n in SIZES:

            def write_payments(n: int = n) -> None:
                record_payments(sessions, publisher, _payments(site, n))

            def write_visits(n: int = n) -> None:
                record_visits(sessions, publisher, _visits(site, n))

            write_payments()  # warm SQLAlchemy's statement cache and psycopg's
            write_visits()
            pay = [_time(write_payments) for _ in range(ROUNDS)]
            visit = [_time(write_visits) for _ in range(ROUNDS)]
            rows.append(
                {
                    "batch": n,
                    "payments_wall_ms": med(w for w, _ in pay),
                    "payments_cpu_ms": med(c for _, c in pay),
                    "payments_sql": _compiles(write_payments),
                    "visits_wall_ms": med(w for w, _ in visit),
                    "visits_cpu_ms": med(c for _, c in visit),
                    "visits_sql": _compiles(write_visits),
                }
            )
    finally:
        engine.dispose()
    return rows


def render(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| batch | payments: ms per batch | CPU ms per batch | CPU ms per payment "
        "| statements compiled per batch (ms) | page views: ms per batch | CPU ms per page view "
        "| statements compiled per batch (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        n, pay, visit = r["batch"], r["payments_sql"], r["visits_sql"]
        lines.append(
            f"| {n} | {r['payments_wall_ms']:.2f} | {r['payments_cpu_ms']:.2f} "
            f"| {r['payments_cpu_ms'] / n:.3f} | {pay['compiled']:.1f} ({pay['compile_ms']:.2f}) "
            f"| {r['visits_wall_ms']:.2f} | {r['visits_cpu_ms'] / n:.3f} "
            f"| {visit['compiled']:.1f} ({visit['compile_ms']:.2f}) |"
        )
    return lines


def main() -> None:
    settings = get_settings()
    engine = make_engine(settings)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            site = websites.create(session, name="batch-cost", domains=["cost.example.com"])
    finally:
        engine.dispose()
    print("\n".join(render(measure(settings, str(site.id)))))


if __name__ == "__main__":
    main()
