"""The attribution side: the drain of a backlog, and the lag under a steady load."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import redis
from celery import Celery

from bench.cpu import CpuMeter, process_seconds, usage
from bench.stack import MemorySampler, Server, Stack
from workers.app import ATTRIBUTE_TASK, ATTRIBUTION_QUEUE

MESSAGE_COST_PAYMENTS = 3000


def worker_command(concurrency: int) -> list[str]:
    """The Procfile's worker line, at WARNING."""
    return [
        ".venv/bin/celery",
        "-A",
        "workers.main",
        "worker",
        "-Q",
        "attribution,maintenance",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
    ]


def queued_batches(redis_url: str) -> list[list[str]]:
    """The id lists of the attribution messages waiting in Redis, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        batches: list[list[str]] = []
        for key in client.keys(ATTRIBUTION_QUEUE + "*"):
            if client.type(key) != b"list":
                continue
            # kombu LPUSHes and workers BRPOP: the oldest message is last.
            for raw in reversed(client.lrange(key, 0, -1)):
                message = json.loads(raw)
                body = message["body"]
                if message.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                args = json.loads(body)[0]
                batches.append([str(x) for x in args[0]])
        return batches
    finally:
        client.close()


def clear_queue(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k for k in client.keys(ATTRIBUTION_QUEUE + "*") if client.type(k) == b"list"]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def publish(app: Celery, batches: list[list[str]]) -> None:
    with app.producer_or_acquire() as producer:
        for ids in batches:
            app.send_task(ATTRIBUTE_TASK, args=[ids], queue=ATTRIBUTION_QUEUE, producer=producer)


def wait_worker_ready(app: Celery, worker: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"{worker.name} exited; see {worker.log}:\n{worker.log_text()}")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError(f"{worker.name} did not answer a ping; see {worker.log}")


RESET = (
    "UPDATE payments SET attribution_status = 'pending', attribution_confidence = 'pending', "
    "attribution_method = NULL, attribution_model = NULL, attributed_source = NULL, "
    "attributed_medium = NULL, attributed_campaign = NULL, attributed_landing_page = NULL, "
    "attributed_channel = NULL, matched_session_id = NULL, matched_visitor_id = NULL, "
    "attributed_at = NULL, attribution_attempts = 0, attribution_last_error = NULL, "
    "enqueued_at = now() WHERE website_id = %s"
)


def reset_attribution(db: psycopg.Connection[Any], website_id: str) -> int:
    """Make every payment of the website wait for attribution again (as if just received)."""
    cursor = db.execute(RESET, (website_id,))
    db.execute("VACUUM ANALYZE payments")
    return cursor.rowcount


def count_status(db: psycopg.Connection[Any], website_id: str, status: str, like: str = "%") -> int:
    row = db.execute(
        "SELECT count(*) FROM payments WHERE website_id = %s AND attribution_status = %s "
        "AND provider_payment_id LIKE %s",
        (website_id, status, like),
    ).fetchone()
    return int(row[0]) if row else 0


def wait_attributed(
    db: psycopg.Connection[Any], website_id: str, *, like: str = "%", timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_status(db, website_id, "pending", like) == 0:
            return True
        time.sleep(0.25)
    return False


@dataclass
class DrainRun:
    worker_processes: int
    payments: int
    messages: int
    seconds: float  # from the first publish to the last attributed_at
    attributed: int
    failed: int
    completed: bool
    cpu_cores: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.attributed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_s": self.per_s}


@dataclass
class Drain:
    """Drains the intake's backlog: the same messages, replayed into an idle worker pool."""

    db: psycopg.Connection[Any]
    app: Celery
    stack: Stack
    sampler: MemorySampler
    env: dict[str, str]
    redis_url: str
    website_id: str
    batches: list[list[str]]
    cpu: CpuMeter | None = None
    unqueued: int = 0  # payments the intake did not queue (the sweeper's job in production)

    @classmethod
    def capture(cls, **kwargs: Any) -> Drain:
        """Take the messages the intake queued (no worker has run) as the backlog to drain."""
        drain = cls(batches=[], **kwargs)
        drain.batches = queued_batches(drain.redis_url)
        queued = {i for ids in drain.batches for i in ids}
        rows = drain.db.execute(
            "SELECT id::text FROM payments WHERE website_id = %s", (drain.website_id,)
        ).fetchall()
        missing = [r[0] for r in rows if r[0] not in queued]
        if missing:  # never queued by the intake (the sweeper's job): drain them too
            drain.batches.append(missing)
        drain.unqueued = len(missing)
        clear_queue(drain.redis_url)
        return drain

    def start_worker(self, concurrency: int) -> Server:
        worker = self.stack.start(f"worker-c{concurrency}", worker_command(concurrency), self.env)
        self.sampler.watch(f"worker --concurrency {concurrency}", worker.pid)
        if self.cpu is not None:
            self.cpu.trees["worker"] = worker.pid
        wait_worker_ready(self.app, worker)
        return worker

    def message_cost(self, worker: Server, sizes: tuple[int, ...] = (1, 10, 100)) -> list[Any]:
        """The worker's CPU per message and per payment, by ids per message.

        The same payments (a sample of the backlog) are attributed again, sent in
        messages of `sizes` ids, to the running worker pool.
        """
        rows = self.db.execute(
            "SELECT id::text FROM payments WHERE website_id = %s ORDER BY id LIMIT %s",
            (self.website_id, MESSAGE_COST_PAYMENTS),
        ).fetchall()
        ids = [r[0] for r in rows]
        found = []
        for size in sizes:
            self.db.execute(RESET.replace("website_id = %s", "id = ANY(%s::uuid[])"), (ids,))
            batches = [ids[i : i + size] for i in range(0, len(ids), size)]
            before = process_seconds(worker.pid)
            started = time.time()
            publish(self.app, batches)
            wait_attributed(self.db, self.website_id, timeout=600)
            seconds = time.time() - started
            cpu = process_seconds(worker.pid) - before
            found.append(
                {
                    "ids_per_message": size,
                    "messages": len(batches),
                    "seconds": seconds,
                    "per_s": len(ids) / seconds,
                    "cpu_ms_per_message": cpu * 1000 / len(batches),
                    "cpu_ms_per_payment": cpu * 1000 / len(ids),
                }
            )
        return found

    def run(self, concurrency: int) -> DrainRun:
        payments = reset_attribution(self.db, self.website_id)
        before = self.cpu.snapshot() if self.cpu is not None else {}
        started = time.time()
        publish(self.app, self.batches)
        completed = wait_attributed(self.db, self.website_id, timeout=max(300.0, payments / 20))
        cores = usage(before, self.cpu.snapshot(), time.time() - started) if self.cpu else {}
        row = self.db.execute(
            "SELECT extract(epoch FROM max(attributed_at)), count(*) FILTER "
            "(WHERE attribution_status = 'attributed') FROM payments WHERE website_id = %s",
            (self.website_id,),
        ).fetchone()
        assert row is not None
        last = float(row[0]) if row[0] is not None else time.time()
        return DrainRun(
            worker_processes=concurrency,
            payments=payments,
            messages=len(self.batches),
            seconds=last - started,
            attributed=int(row[1]),
            failed=count_status(self.db, self.website_id, "failed"),
            completed=completed,
            cpu_cores=cores,
        )


def lag_percentiles(db: psycopg.Connection[Any], website_id: str, prefix: str) -> dict[str, float]:
    """Received -> attributed seconds of the payments of one steady run."""
    row = db.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY lag), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag), count(*) FROM ("
        "SELECT extract(epoch FROM attributed_at - received_at) AS lag FROM payments "
        "WHERE website_id = %s AND provider_payment_id LIKE %s "
        "AND attribution_status = 'attributed') AS lags",
        (website_id, prefix + "-%"),
    ).fetchone()
    assert row is not None
    return {
        "p50_s": float(row[0] or 0),
        "p95_s": float(row[1] or 0),
        "p99_s": float(row[2] or 0),
        "max_s": float(row[3] or 0),
        "attributed": int(row[4]),
    }
