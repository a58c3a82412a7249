"""The background publisher: fewer, fuller messages, and nothing held back at shutdown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from api.payments import record_payments
from db.base import utcnow
from db.models import Website
from db.repositories.payments import NewPayment
from tests.conftest import unique
from workers.app import ATTRIBUTION_QUEUE
from workers.enqueue import BackgroundPublisher, Publisher

# Longer than any test: a batch is sent only because it is full, flushed or closed.
FOREVER = 3600.0


@pytest.fixture
def publisher(celery_app: Celery) -> Iterator[Publisher]:
    celery_app.control.purge()  # jobs queued by earlier tests (no worker ran them)
    yield Publisher(celery_app)
    celery_app.control.purge()


def queued(app: Celery) -> int:
    # Redis keeps no empty queue: the broker cannot say, and nothing is waiting.
    return Publisher(app).queue_depth() or 0


def take_queued(app: Celery) -> list[list[str]]:
    """Take every message off the attribution queue; their id lists, oldest first."""
    batches: list[list[str]] = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.amqp.queues[ATTRIBUTION_QUEUE])
        try:
            while queued(app):
                message = queue.get(block=True, timeout=5)
                args, _kwargs, _embed = message.decode()
                batches.append(list(args[0]))
                message.ack()
        finally:
            queue.close()
    return batches


def wait_for_messages(app: Celery, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while queued(app) < count:
        assert time.monotonic() < deadline, "the publisher sent nothing"
        time.sleep(0.02)


def new_ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def test_ids_submitted_within_the_window_share_one_message(
    publisher: Publisher, celery_app: Celery
) -> None:
    background = BackgroundPublisher(publisher, window_seconds=FOREVER)
    submitted = [new_ids(1), new_ids(2), new_ids(3)]
    for ids in submitted:
        background.submit(ids)
    assert queued(celery_app) == 0  # the window is still open
    assert background.flush(timeout=10)
    assert take_queued(celery_app) == [[str(i) for ids in submitted for i in ids]]
    background.close()


def test_a_full_batch_is_sent_without_waiting_for_the_window(
    publisher: Publisher, celery_app: Celery
) -> None:
    background = BackgroundPublisher(publisher, window_seconds=FOREVER, max_ids=3)
    ids = new_ids(3)
    background.submit(ids[:1])
    background.submit(ids[1:])
    wait_for_messages(celery_app, 1)
    background.close()
    assert take_queued(celery_app) == [[str(i) for i in ids]]


def test_close_sends_what_is_waiting_at_once(publisher: Publisher, celery_app: Celery) -> None:
    background = BackgroundPublisher(publisher, window_seconds=FOREVER)
    ids = new_ids(5)
    background.submit(ids)
    background.close(timeout=10)
    assert take_queued(celery_app) == [[str(i) for i in ids]]
    assert not background._thread.is_alive()


def test_without_a_window_ids_are_sent_unasked(publisher: Publisher, celery_app: Celery) -> None:
    background = BackgroundPublisher(publisher, window_seconds=0)
    ids = new_ids(2)
    background.submit(ids)
    wait_for_messages(celery_app, 1)
    background.close()
    assert take_queued(celery_app) == [[str(i) for i in ids]]


def test_the_intake_answers_before_its_ids_are_published(
    publisher: Publisher,
    celery_app: Celery,
    sessions: sessionmaker[Session],
    site: Website,
) -> None:
    """The group committer answers a request once `record_payments` returns: the ids
    are handed over, and the window runs in the publisher's thread, not in the request."""
    background = BackgroundPublisher(publisher, window_seconds=FOREVER)
    batch = [
        NewPayment(site.id, "manual", unique(), Decimal(49), "USD", "paid", utcnow())
        for _ in range(3)
    ]
    results = record_payments(sessions, background, batch)
    assert [r.payment["provider_payment_id"] for r in results] == [
        p.provider_payment_id for p in batch
    ]
    assert queued(celery_app) == 0  # answered; nothing sent yet
    background.close(timeout=10)
    assert take_queued(celery_app) == [[str(r.payment["id"]) for r in results]]
