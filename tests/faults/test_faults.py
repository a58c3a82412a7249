"""Fault injection against the real stack: what production does to the pipeline.

Each scenario drives a payment load at a real API (uvicorn), with real Celery
workers and beat, on a private PostgreSQL and Redis, breaks something in the
middle, and then checks the pipeline's promise: every payment acknowledged with
a 2xx is stored, and ends attributed exactly once. Each prints its figures.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from db.repositories import payments, websites
from db.repositories.payments import NewPayment
from db.session import make_session_factory, unit_of_work
from tests.faults.conftest import FIGURES, ROOT, VENV_BIN, Proc, Servers, Stack
from workers.tasks.attribute import attribute_payments

pytestmark = pytest.mark.faults

PAYMENTS_PATH = "/api/payments/manual"


# --- the load generator --------------------------------------------------------------


@dataclass
class Outcome:
    """One request as the client saw it."""

    provider_payment_id: str
    sent: float
    done: float = 0.0
    status: int | None = None
    payment_id: str | None = None
    duplicate: bool | None = None
    retry_after: str | None = None
    error: str | None = None  # no response: refused, disconnected, timeout, ...

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def payment_body(website_id: str, provider_payment_id: str) -> dict[str, Any]:
    return {
        "website_id": website_id,
        "amount": 49,
        "currency": "USD",
        "provider_payment_id": provider_payment_id,
        "metadata": {"utm_source": "faults", "utm_medium": "test"},
    }


def post_payment(client: httpx.Client, website_id: str, provider_payment_id: str) -> Outcome:
    outcome = Outcome(provider_payment_id, sent=time.monotonic())
    try:
        response = client.post(PAYMENTS_PATH, json=payment_body(website_id, provider_payment_id))
    except httpx.ConnectError:
        outcome.error = "refused"
    except httpx.TimeoutException:
        outcome.error = "timeout"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        outcome.error = "disconnected"
    except httpx.TransportError as exc:
        outcome.error = type(exc).__name__
    else:
        outcome.status = response.status_code
        outcome.retry_after = response.headers.get("retry-after")
        if outcome.ok:
            data = response.json()
            outcome.payment_id = data["payment"]["id"]
            outcome.duplicate = data["duplicate"]
    outcome.done = time.monotonic()
    return outcome


class Load:
    """`clients` threads posting unique payments back to back until stopped."""

    def __init__(self, stack: Stack, *, clients: int = 4, pause: float = 0.0) -> None:
        self.stack = stack
        self.clients = clients
        self.pause = pause
        self.outcomes: list[Outcome] = []
        self.started = 0.0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.outcomes

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.stack.secret}"}
        with httpx.Client(base_url=self.stack.api_url, headers=headers, timeout=20) as client:
            while not self._stop.is_set():
                outcome = post_payment(client, self.stack.website_id, f"flt_{uuid.uuid4().hex}")
                self.outcomes.append(outcome)
                if outcome.error:
                    self._stop.wait(0.05)  # the API is gone: do not spin
                elif self.pause:
                    self._stop.wait(self.pause)


def wait_until(what: str, predicate: Any, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def sleep_until(moment: float) -> None:
    """Until `time.monotonic()` reaches `moment` (a point of the scenario's timeline)."""
    while (remaining := moment - time.monotonic()) > 0:
        time.sleep(min(remaining, 0.1))


# --- the private database, read by the test ---------------------------------------------


@dataclass(frozen=True)
class StoredPayment:
    id: str
    provider_payment_id: str
    attribution_status: str
    attribution_attempts: int
    attributed_at: datetime | None
    enqueued_at: datetime | None


class Database:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)

    def payments(self, website_id: str) -> dict[str, StoredPayment]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id, provider_payment_id, attribution_status, attribution_attempts,"
                    " attributed_at, enqueued_at FROM payments WHERE website_id = :website"
                ),
                {"website": uuid.UUID(website_id)},
            )
            return {
                str(r.id): StoredPayment(
                    str(r.id),
                    r.provider_payment_id,
                    r.attribution_status,
                    r.attribution_attempts,
                    r.attributed_at,
                    r.enqueued_at,
                )
                for r in rows
            }

    def count_pending(self, website_id: str) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM payments"
                        " WHERE website_id = :website AND attribution_status = 'pending'"
                    ),
                    {"website": uuid.UUID(website_id)},
                ).scalar_one()
            )

    def pending_among(self, payment_ids: set[str]) -> set[str]:
        if not payment_ids:
            return set()
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id FROM payments WHERE id = ANY(:ids)"
                    " AND attribution_status = 'pending'"
                ),
                {"ids": [uuid.UUID(i) for i in payment_ids]},
            )
            return {str(r.id) for r in rows}

    def settle(
        self, website_id: str, acknowledged: set[str], timeout: float = 60
    ) -> dict[str, StoredPayment]:
        """Poll until every acknowledged payment is stored and every stored one attributed.

        Returns the rows as they are when that happens, or when time runs out (the
        figures then show what is missing).
        """
        deadline = time.monotonic() + timeout
        while True:
            rows = self.payments(website_id)
            settled = acknowledged <= rows.keys() and all(
                r.attribution_status == "attributed" for r in rows.values()
            )
            if settled or time.monotonic() > deadline:
                return rows
            time.sleep(0.25)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def db(fault_servers: Servers) -> Iterator[Database]:
    database = Database(fault_servers.database_url)
    yield database
    database.close()


# --- figures -------------------------------------------------------------------------------


@dataclass
class Figures:
    scenario: str
    sent: int
    ok: int
    non_2xx: dict[int, int]
    no_response: dict[str, int]
    stored: int
    attributed: int
    attributed_once: int
    lost: int
    acknowledged: int  # distinct payments acknowledged with a 2xx
    acknowledged_not_attributed: int
    stored_without_2xx: int
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        non_2xx = ", ".join(f"{k}: {v}" for k, v in sorted(self.non_2xx.items())) or "none"
        no_response = ", ".join(f"{k}: {v}" for k, v in sorted(self.no_response.items()))
        extra = "".join(f"; {k} {v}" for k, v in self.extra.items())
        return (
            f"[faults] {self.scenario}: sent {self.sent}; 2xx {self.ok}; non-2xx {{{non_2xx}}}; "
            f"no response {{{no_response or 'none'}}}; stored {self.stored}; "
            f"attributed {self.attributed}; attributed exactly once {self.attributed_once}; "
            f"lost {self.lost}; 2xx not attributed {self.acknowledged_not_attributed}; "
            f"stored without a 2xx {self.stored_without_2xx}{extra}"
        )


def figures(
    scenario: str,
    outcomes: Sequence[Outcome],
    rows: dict[str, StoredPayment],
    **extra: Any,
) -> Figures:
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    acknowledged_keys = {o.provider_payment_id for o in outcomes if o.ok}
    attributed = {i for i, r in rows.items() if r.attribution_status == "attributed"}
    # One guarded write of the result: attributed, with exactly one attempt recorded.
    once = {i for i in attributed if rows[i].attribution_attempts == 1 and rows[i].attributed_at}
    result = Figures(
        scenario=scenario,
        sent=len(outcomes),
        ok=sum(1 for o in outcomes if o.ok),
        non_2xx=dict(Counter(o.status for o in outcomes if o.status is not None and not o.ok)),
        no_response=dict(Counter(o.error for o in outcomes if o.error)),
        stored=len(rows),
        attributed=len(attributed),
        attributed_once=len(once),
        lost=len(acknowledged - rows.keys()),
        acknowledged=len(acknowledged),
        acknowledged_not_attributed=len(acknowledged - attributed),
        stored_without_2xx=sum(
            1 for r in rows.values() if r.provider_payment_id not in acknowledged_keys
        ),
        extra=extra,
    )
    line = result.line()
    print("\n" + line)
    FIGURES.append(line)
    return result


def assert_nothing_lost(result: Figures, stack: Stack) -> None:
    context = f"{result.line()}\n{stack.logs(25)}"
    assert result.ok > 0, "no payment was acknowledged at all\n" + context
    assert result.lost == 0, "2xx payments without a stored row\n" + context
    assert result.acknowledged_not_attributed == 0, "2xx payments not attributed\n" + context
    assert result.attributed == result.stored, "stored payments left unattributed\n" + context
    assert result.attributed_once == result.attributed, "attributed more than once\n" + context


# --- redelivery: a job delivered again writes nothing ---------------------------------------

PUBLISH = """
import json, sys
from workers.enqueue import Publisher
from workers.main import app
sys.exit(0 if Publisher(app).attribute(json.load(sys.stdin)) else 1)
"""

BATCH_DONE = re.compile(
    r"succeeded in [\d.]+s: \{'attributed': (\d+), 'failed': (\d+), 'skipped': (\d+)\}"
)


def batch_counts(output: str) -> tuple[int, int, int]:
    totals = [0, 0, 0]
    for match in BATCH_DONE.finditer(output):
        for i in range(3):
            totals[i] += int(match.group(i + 1))
    return totals[0], totals[1], totals[2]


SWEEPER_REQUEUED = re.compile(r"sweeper re-queued (\d+) pending payment")


def sweeper_requeued(stack: Stack) -> int:
    """How many payment jobs the sweeper queued again, over every worker of the stack."""
    return sum(int(m.group(1)) for p in stack.procs for m in SWEEPER_REQUEUED.finditer(p.output()))


def unacked_tags(stack: Stack) -> set[bytes]:
    with stack.servers.redis.client() as client:
        return set(client.hkeys("unacked"))


def queue_drained(stack: Stack, held_before: set[bytes]) -> bool:
    """Nothing waits in the attribution queue and no new delivery is unacknowledged (a
    killed worker's delivery stays unacknowledged until the visibility timeout)."""
    with stack.servers.redis.client() as client:
        return client.llen("attribution") == 0 and set(client.hkeys("unacked")) <= held_before


def redeliver(
    stack: Stack, worker: Proc, db: Database, payment_ids: Sequence[str]
) -> dict[str, Any]:
    """Queue the jobs of attributed payments again; check that their results do not move."""
    before = db.payments(stack.website_id)
    mark = len(worker.output())
    held_before = unacked_tags(stack)
    subprocess.run(
        [str(VENV_BIN / "python"), "-c", PUBLISH],
        input=json.dumps(list(payment_ids)),
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    def done() -> bool:
        ran = sum(batch_counts(worker.output()[mark:]))
        return ran >= len(payment_ids) and queue_drained(stack, held_before)

    wait_until("the worker to run the redelivered jobs", done, timeout=30)
    written, failed, skipped = batch_counts(worker.output()[mark:])
    after = db.payments(stack.website_id)
    moved = [
        i
        for i in payment_ids
        if (after[i].attributed_at, after[i].attribution_attempts, after[i].attribution_status)
        != (before[i].attributed_at, before[i].attribution_attempts, before[i].attribution_status)
    ]
    return {
        "redelivered": len(payment_ids),
        "rewritten": written + failed,
        "skipped": skipped,
        "changed": len(moved),
    }


# --- the scenarios -------------------------------------------------------------------------


def test_redis_stopped_for_ten_seconds_under_load(stack: Stack, db: Database) -> None:
    """The broker disappears for 10 s: the intake keeps answering 200 (the row is the job),
    and after Redis returns the sweeper re-queues what was never delivered."""
    stack.up(workers=1)
    redis_server = stack.servers.redis
    with Load(stack, clients=4, pause=0.04) as load:
        sleep_until(load.started + 7)
        down_at = time.monotonic()
        redis_server.stop()
        sleep_until(down_at + 10)
        redis_server.start()
        up_at = time.monotonic()
        pending_when_back = db.count_pending(stack.website_id)
        sleep_until(load.started + 25)
    outcomes = load.outcomes
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    rows = db.settle(stack.website_id, acknowledged, timeout=60)
    during = [o for o in outcomes if down_at <= o.sent < up_at]
    result = figures(
        "redis stopped 10 s",
        outcomes,
        rows,
        sent_during_outage=len(during),
        ok_during_outage=sum(1 for o in during if o.ok),
        slowest_during_outage_s=round(max((o.done - o.sent for o in during), default=0), 2),
        pending_when_redis_returned=pending_when_back,
        requeued_by_sweeper=sweeper_requeued(stack),
    )
    assert_nothing_lost(result, stack)
    # The intake does not need the broker: every request succeeded, outage or not.
    assert result.non_2xx == {}, result.line()
    assert result.no_response == {}, result.line()
    assert result.extra["ok_during_outage"] > 0, result.line()

    # Exactly once: delivering every job again changes nothing.
    worker = next(p for p in stack.procs if p.name == "w1")
    check = redeliver(stack, worker, db, sorted(acknowledged))
    line = f"[faults] redis stopped 10 s, every job delivered again: {check}"
    print(line)
    FIGURES.append(line)
    assert check["rewritten"] == 0, check
    assert check["changed"] == 0, check


def unacked_payment_ids(stack: Stack) -> set[str]:
    """Payment ids of the messages Redis holds as delivered but not acknowledged."""
    ids: set[str] = set()
    with stack.servers.redis.client() as client:
        for raw in client.hgetall("unacked").values():
            message = json.loads(raw)[0]
            if message.get("headers", {}).get("task") != "metrivo.attribute_payments":
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            ids.update(json.loads(body)[0][0])
    return ids


def freeze_holding_a_batch(
    stack: Stack, worker: Proc, db: Database, *, prefer: int, timeout: float = 10
) -> set[str]:
    """SIGSTOP the worker's process group at a moment it holds an unacknowledged batch
    whose payments are still pending (preferably `prefer` or more of them); returns the
    batch's ids. Freezing first makes "mid-batch" certain: nothing moves until the kill."""
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        os.killpg(worker.pid, signal.SIGSTOP)
        held = unacked_payment_ids(stack)
        pending = db.pending_among(held)
        late = time.monotonic() > started + timeout / 2
        if pending and (len(pending) >= prefer or late):
            return held
        os.killpg(worker.pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("the worker never held a batch of pending payments")


def test_worker_killed_mid_batch(stack: Stack, db: Database) -> None:
    """SIGKILL to a worker (and its pool) in the middle of a batch: the sweeper re-queues
    what it held, a replacement worker attributes it, once."""
    stack.up(workers=1)
    worker = next(p for p in stack.procs if p.name == "w1")
    with Load(stack, clients=8, pause=0.02) as load:
        wait_until(
            "the worker to attribute some payments",
            lambda: batch_counts(worker.output())[0] > 0,
            timeout=20,
        )
        sleep_until(load.started + 4)
        held = freeze_holding_a_batch(stack, worker, db, prefer=3)
        pending_at_kill = len(db.pending_among(held))
        worker.kill_group()
        killed_at = time.monotonic()
        sleep_until(killed_at + 2)
        replacement = stack.start_worker("w2")
        stack.wait_worker(replacement)
        sleep_until(max(load.started + 10, time.monotonic() + 3))
    outcomes = load.outcomes
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    rows = db.settle(stack.website_id, acknowledged, timeout=60)
    result = figures(
        "worker SIGKILL mid-batch",
        outcomes,
        rows,
        batch_held_by_killed_worker=len(held),
        of_them_pending_at_kill=pending_at_kill,
        of_them_attributed_once=sum(
            1
            for i in held
            if rows[i].attribution_status == "attributed" and rows[i].attribution_attempts == 1
        ),
        requeued_by_sweeper=sweeper_requeued(stack),
    )
    assert_nothing_lost(result, stack)
    assert result.extra["of_them_attributed_once"] == len(held), result.line()
    assert result.non_2xx == {}, result.line()
    assert result.no_response == {}, result.line()

    # Redis hands the dead worker's batch out again after the visibility timeout: that
    # delivery must change nothing.
    check = redeliver(stack, replacement, db, sorted(held))
    line = f"[faults] worker SIGKILL mid-batch, the held batch delivered again: {check}"
    print(line)
    FIGURES.append(line)
    assert check["rewritten"] == 0, check
    assert check["changed"] == 0, check


def test_postgres_restarted_under_load(stack: Stack, db: Database) -> None:
    """`pg_ctl restart -m fast` mid-load: 503 with Retry-After or success, never a 2xx
    without a row, and the same API process serves 200s again afterwards."""
    stack.up(workers=1)
    assert stack.api is not None
    api_pid = stack.api.pid
    with Load(stack, clients=4, pause=0.01) as load:
        sleep_until(load.started + 4)
        restart_at = time.monotonic()
        stack.servers.postgres.restart()
        back_at = time.monotonic()
        sleep_until(back_at + 6)
    outcomes = load.outcomes
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    rows = db.settle(stack.website_id, acknowledged, timeout=60)
    after = [o for o in outcomes if o.sent >= back_at + 2]
    unavailable = [o for o in outcomes if o.status == 503]
    result = figures(
        "postgres restarted",
        outcomes,
        rows,
        restart_took_s=round(back_at - restart_at, 2),
        sent_2s_after_restart=len(after),
        ok_2s_after_restart=sum(1 for o in after if o.ok),
        http_503_with_retry_after=sum(1 for o in unavailable if o.retry_after),
    )
    assert_nothing_lost(result, stack)
    assert set(result.non_2xx) <= {503}, result.line()
    assert all(o.retry_after for o in unavailable), "a 503 without Retry-After"
    assert result.no_response == {}, result.line()
    # Recovered without a restart: the same process answers 200 to new payments.
    assert stack.api.alive()
    assert stack.api.pid == api_pid
    assert after, result.line()
    assert all(o.ok for o in after), result.line()
    assert httpx.get(f"{stack.api_url}/readyz", timeout=10).status_code == 200


def test_api_sigterm_under_load(stack: Stack, db: Database) -> None:
    """SIGTERM to uvicorn mid-load: requests in flight complete, the pending group-commit
    batch is committed (and queued), nothing acknowledged is lost."""
    stack.up(workers=1)
    api = stack.api
    assert api is not None
    with Load(stack, clients=8) as load:
        sleep_until(load.started + 4)
        term_at = time.monotonic()
        api.signal(signal.SIGTERM)
        try:
            exit_code: int | None = api.popen.wait(30)
        except subprocess.TimeoutExpired:
            exit_code = None
        exited_at = time.monotonic()
        sleep_until(exited_at + 1)
    outcomes = load.outcomes
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    rows = db.settle(stack.website_id, acknowledged, timeout=60)
    stored_keys = {r.provider_payment_id for r in rows.values()}
    unanswered = [o for o in outcomes if o.error]
    in_flight = [o for o in outcomes if o.sent < term_at < o.done]
    result = figures(
        "API SIGTERM",
        outcomes,
        rows,
        exit_code=exit_code,
        shutdown_took_s=round(exited_at - term_at, 2),
        in_flight_at_sigterm=len(in_flight),
        in_flight_answered_2xx=sum(1 for o in in_flight if o.ok),
        unanswered_but_stored=sum(1 for o in unanswered if o.provider_payment_id in stored_keys),
    )
    assert_nothing_lost(result, stack)
    # uvicorn exits with the signal's status after a graceful shutdown (older ones with 0).
    assert exit_code in (0, -signal.SIGTERM), f"exit {exit_code}\n{api.output()[-3000:]}"
    assert "Application shutdown complete" in api.output(), api.output()[-3000:]
    assert "Traceback" not in api.output(), api.output()[-5000:]
    # Only two ways not to get a 2xx: the connection was refused after the server closed
    # its socket, or an idle keep-alive connection was closed under a new request. A
    # request the server took on is answered.
    assert set(result.non_2xx) == set(), result.line()
    assert set(result.no_response) <= {"refused", "disconnected"}, result.line()
    assert result.extra["unanswered_but_stored"] == 0, result.line()
    assert result.extra["in_flight_answered_2xx"] == len(in_flight), result.line()


def test_duplicate_delivery_storm(stack: Stack, db: Database) -> None:
    """1,000 deliveries of 50 payments from 32 concurrent clients: exactly 50 payments."""
    stack.up(workers=1)
    keys = [f"storm_{uuid.uuid4().hex}" for _ in range(50)]
    deliveries = keys * 20
    random.shuffle(deliveries)
    barrier = threading.Barrier(32)
    headers = {"Authorization": f"Bearer {stack.secret}"}

    def client(index: int) -> list[Outcome]:
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as http:
            barrier.wait(30)
            return [post_payment(http, stack.website_id, key) for key in deliveries[index::32]]

    with ThreadPoolExecutor(32) as pool:
        outcomes = [o for part in pool.map(client, range(32)) for o in part]
    ids_by_key: dict[str, set[str]] = {}
    for o in outcomes:
        if o.ok and o.payment_id:
            ids_by_key.setdefault(o.provider_payment_id, set()).add(o.payment_id)
    acknowledged = {o.payment_id for o in outcomes if o.ok and o.payment_id}
    rows = db.settle(stack.website_id, acknowledged, timeout=60)
    result = figures(
        "duplicate storm",
        outcomes,
        rows,
        distinct_payments=len(set(keys)),
        created_answers=sum(1 for o in outcomes if o.ok and o.duplicate is False),
        duplicate_answers=sum(1 for o in outcomes if o.ok and o.duplicate is True),
    )
    assert_nothing_lost(result, stack)
    assert result.stored == 50, result.line()
    assert result.sent == 1000, result.line()
    # No fault here: a 503 would be the database refusing a batch it could store (see
    # test_duplicate_arriving_while_its_payment_is_attributed_does_not_deadlock).
    assert result.ok == 1000, result.line()
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "one key answered with two ids"
    assert len(ids_by_key) == 50
    assert result.extra["created_answers"] == 50, result.line()


# --- lock order: the intake's duplicate check against the worker's result write ----------


def lock_waiters(engine: Engine) -> int:
    """How many sessions of the database wait on a lock."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_duplicate_arriving_while_its_payment_is_attributed_does_not_deadlock(
    fault_servers: Servers,
) -> None:
    """A batch of duplicates and an attribution batch covering the same payments must not
    deadlock.

    The intake locks the stored rows of a batch's repeats in key order (website, provider,
    provider_payment_id: `SELECT ... ORDER BY ... FOR UPDATE`); the worker writes its
    results row by row in payment-id order (`UPDATE payments ... WHERE id = ...`). For two
    payments whose key order is the opposite of their id order, each transaction can hold
    the row the other needs next; PostgreSQL then aborts one after `deadlock_timeout`
    (1 s). When it picks the intake, every request of that batch is answered 503 although
    the database is up (the duplicate storm hits this now and then); when it picks the
    worker, the batch is retried later.

    A third transaction only arranges the timing the storm hits by chance: it holds the
    first payment's row lock (as a concurrent intake batch does) until the intake batch
    and the attribution batch both wait behind it.
    """
    engine = create_engine(fault_servers.database_url, pool_size=5)
    sessions = make_session_factory(engine)
    try:
        with unit_of_work(sessions) as session:
            site = websites.create(session, name="Lock order", domains=["shop.example.com"])
        paid_at = datetime.now(UTC)

        def new(key: str) -> NewPayment:
            return NewPayment(site.id, "manual", key, Decimal(49), "USD", "paid", paid_at)

        # Two payments whose key order is the opposite of their id order.
        while True:
            first, second = new(f"lock_a_{uuid.uuid4().hex}"), new(f"lock_b_{uuid.uuid4().hex}")
            with unit_of_work(sessions) as session:
                recorded = payments.record_batch(session, [first, second])
            first_id, second_id = (uuid.UUID(str(r.payment["id"])) for r in recorded)
            if second_id < first_id:
                break

        errors: dict[str, BaseException] = {}

        def intake() -> None:  # a batch repeating both payments
            try:
                with unit_of_work(sessions) as session:
                    payments.record_batch(session, [first, second])
            except Exception as exc:
                errors["intake"] = exc

        def worker() -> None:  # the attribution batch of both payments
            try:
                attribute_payments(sessions, b"k" * 32, [first_id, second_id])
            except Exception as exc:
                errors["worker"] = exc

        threads = [threading.Thread(target=intake), threading.Thread(target=worker)]

        def blocked_or_done() -> bool:
            return lock_waiters(engine) >= sum(t.is_alive() for t in threads)

        with engine.connect() as holder:
            holder.execute(
                text("SELECT id FROM payments WHERE id = :id FOR UPDATE"), {"id": first_id}
            )
            for thread in threads:  # the intake first, then the worker
                thread.start()
                wait_until(f"{thread.name} to wait on a lock or finish", blocked_or_done, 10)
            holder.commit()
        for thread in threads:
            thread.join(30)
        with engine.connect() as connection:
            states = connection.execute(
                text("SELECT attribution_status FROM payments WHERE id IN (:a, :b)"),
                {"a": first_id, "b": second_id},
            ).scalars()
            attributed = sum(1 for state in states if state == "attributed")
    finally:
        engine.dispose()
    failures = {name: str(exc).splitlines()[0] for name, exc in errors.items()}
    line = (
        "[faults] duplicates vs attribution of the same payments: "
        f"errors {failures or 'none'}; attributed {attributed} of 2"
    )
    print("\n" + line)
    FIGURES.append(line)
    assert not errors, line
    assert attributed == 2, line
