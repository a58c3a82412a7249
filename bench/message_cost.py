"""What an attribution message costs, by ids per message, without a load generator.

    .venv/bin/python -m bench.message_cost --db-name metrivo_bench_lag \
        --redis-url redis://127.0.0.1:6379/9

Creates its own database (dropped at the end) and flushes the Redis db, records
sessions and payments in-process with the API's own batch writers (three payments
in four name a recorded session, as `bench/lua/payments.lua` does), then attributes
the same payments again and again in messages of 1, 10 and 100 ids:

- in-process: `attribute_payments` (the task's unit of work), this thread's CPU and
  the SQL statements per message;
- a worker: the Procfile's worker at `--concurrency 1`, CPU of its process tree
  (main and pool process) per message, as the message-cost table of (d) does.

CPU time, not wall time: the figures hold on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event

from api.payments import record_payments
from api.track import Visit, record_visits
from attribution.identity import email_hash
from bench import environment, pipeline
from bench.cpu import CpuMeter, process_seconds
from bench.stack import Stack
from config import Settings
from db.base import utcnow
from db.repositories.payments import NewPayment
from db.session import make_engine, make_session_factory
from workers.app import create_celery
from workers.tasks.attribute import attribute_payments


class _NoPublisher:
    def submit(self, payment_ids: Sequence[uuid.UUID]) -> None:
        pass


def populate(settings: Settings, website_id: uuid.UUID, count: int) -> list[str]:
    """`count` payments, three in four naming a recorded session; returns their ids."""
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    publisher: Any = _NoPublisher()
    journeys = []
    try:
        for start in range(0, count, 200):
            visits = [
                Visit(
                    website_id=website_id,
                    domains=("shop.example.com",),
                    visitor_id=uuid.uuid4(),
                    session_id=uuid.uuid4(),
                    is_pageview=True,
                    url="https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email",
                    referrer=None,
                    received_at=utcnow(),
                )
                for _ in range(min(200, count - start))
            ]
            record_visits(sessions, publisher, visits)
            journeys += [(v.visitor_id, v.session_id) for v in visits]
        ids: list[str] = []
        for start in range(0, count, 200):
            batch = []
            for i in range(start, min(start + 200, count)):
                visitor, session = journeys[i] if i % 4 else (uuid.uuid4(), uuid.uuid4())
                batch.append(
                    NewPayment(
                        website_id=website_id,
                        provider="manual",
                        provider_payment_id=f"cost-{uuid.uuid4().hex}",
                        amount=Decimal(4900),
                        currency="USD",
                        status="paid",
                        paid_at=utcnow(),
                        customer_email_hash=email_hash(settings.hmac_key, f"buyer{i}@example.com"),
                        visitor_id=visitor,
                        session_id=session,
                        metadata={"checkout": "custom", "plan": "pro"},
                    )
                )
            for result in record_payments(sessions, publisher, batch):
                ids.append(str(result.payment["id"]))
    finally:
        engine.dispose()
    return ids


def in_process(settings: Settings, ids: list[str], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """The task's unit of work called directly: CPU ms and statements per message."""
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    statements = 0

    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    db = psycopg_connect(settings)
    rows = []
    try:
        for size in sizes:
            db.execute(_reset_ids(), (ids,))
            uids = [uuid.UUID(i) for i in ids]
            batches = [uids[i : i + size] for i in range(0, len(uids), size)]
            attribute_payments(sessions, settings.hmac_key, batches[0])  # warm the caches
            cpu: list[float] = []
            statements = 0
            for batch in batches[1:]:
                started = time.thread_time()
                attribute_payments(sessions, settings.hmac_key, batch)
                cpu.append((time.thread_time() - started) * 1000)
            rows.append(
                {
                    "ids_per_message": size,
                    "messages": len(cpu),
                    "cpu_ms_per_message": statistics.fmean(cpu),
                    "cpu_ms_per_payment": statistics.fmean(cpu) / size,
                    "statements_per_message": statements / len(cpu),
                }
            )
    finally:
        db.close()
        engine.dispose()
    return rows


def _reset_ids() -> str:
    return pipeline.RESET.replace("website_id = %s", "id = ANY(%s::uuid[])")


def psycopg_connect(settings: Settings) -> Any:
    import psycopg

    url = settings.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True)


def in_worker(
    target: environment.Target,
    settings: Settings,
    website_id: str,
    ids: list[str],
    sizes: Sequence[int],
) -> list[dict[str, Any]]:
    """The Procfile's worker (one pool process): its CPU per message, main and pool."""
    app = create_celery(settings)
    run_dir = Path(tempfile.mkdtemp(prefix="metrivo-message-cost-"))
    stack = Stack(run_dir, None)
    db = target.connect()
    # PostgreSQL: this database's backends and the server's own processes.
    meter = CpuMeter(database=target.db_name)
    rows = []
    try:
        worker = stack.start("worker", pipeline.worker_command(1), target.env())
        pipeline.wait_worker_ready(app, worker)
        for size in sizes:
            db.execute(_reset_ids(), (ids,))
            batches = [ids[i : i + size] for i in range(0, len(ids), size)]
            before = process_seconds(worker.pid)
            database_before = meter.snapshot()["postgres"]
            started = time.time()
            pipeline.publish(app, batches)
            if not pipeline.wait_attributed(db, website_id, timeout=600):
                raise RuntimeError("the worker did not attribute every payment in time")
            seconds = time.time() - started
            cpu = process_seconds(worker.pid) - before
            database = meter.snapshot()["postgres"] - database_before
            rows.append(
                {
                    "ids_per_message": size,
                    "messages": len(batches),
                    "seconds": seconds,
                    "cpu_ms_per_message": cpu * 1000 / len(batches),
                    "cpu_ms_per_payment": cpu * 1000 / len(ids),
                    "postgres_ms_per_message": database * 1000 / len(batches),
                }
            )
    finally:
        stack.close()
        db.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.message_cost", description=__doc__)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-name", default="metrivo_bench_lag")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="flushed!")
    parser.add_argument("--payments", type=int, default=3000)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--no-worker", action="store_true", help="in-process figures only")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    data_dir = Path(tempfile.mkdtemp(prefix="metrivo-message-cost-data-"))
    target = environment.Target(
        args.database_url, args.db_name, args.redis_url, secrets.token_hex(32), data_dir
    )
    target.create()
    try:
        env = target.env()
        environment.migrate(env)
        site = environment.metrivo(
            env, "website", "create", "--name", "cost", "--domain", "shop.example.com"
        )
        settings = Settings(
            database_url=target.database_url,
            broker_url=target.redis_url,
            secret=target.secret,
            data_dir=data_dir,
        )
        ids = populate(settings, uuid.UUID(site["id"]), args.payments)
        with target.connect() as db:
            db.execute("VACUUM ANALYZE")
        print(f"{len(ids)} payments", flush=True)
        print("in-process (attribute_payments):")
        print(
            "| ids per message | messages | CPU ms per message | CPU ms per payment | statements |"
        )
        for r in in_process(settings, ids, sizes):
            print(
                f"| {r['ids_per_message']} | {r['messages']} | {r['cpu_ms_per_message']:.2f} "
                f"| {r['cpu_ms_per_payment']:.3f} | {r['statements_per_message']:.1f} |"
            )
        if not args.no_worker:
            print("worker (--concurrency 1, main and pool process):")
            print(
                "| ids per message | messages | seconds | CPU ms per message | per payment "
                "| PostgreSQL CPU ms per message |"
            )
            for r in in_worker(target, settings, site["id"], ids, sizes):
                print(
                    f"| {r['ids_per_message']} | {r['messages']} | {r['seconds']:.1f} "
                    f"| {r['cpu_ms_per_message']:.2f} | {r['cpu_ms_per_payment']:.3f} "
                    f"| {r['postgres_ms_per_message']:.2f} |"
                )
    finally:
        if not args.keep_db:
            target.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
