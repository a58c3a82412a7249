"""Rate limits through real HTTP, on the suite's backend: Redis when `REDIS_URL` is set,
else the in-process counters of the embedded mode.

The servers here count in one-hour windows (the same code as the one-minute
default), so a window does not end in the middle of a test.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import Engine

from api.app import create_app
from api.errors import ApiError
from api.ratelimit import FLUSH_SECONDS, Limit, MemoryCounter, RateLimiter, RedisCounter
from config import Settings
from db.models import Website
from tests.conftest import Builders, LiveServer, bearer, free_port, unique

WINDOW = 3600
LIMITS = {
    "rate_limit_secret_per_minute": 4,
    "rate_limit_public_per_minute": 6,
    "rate_limit_identify_public_per_minute": 2,
}
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


def limited_server(
    settings: Settings, engine: Engine, celery: Celery, **changes: Any
) -> LiveServer:
    """A server with the given settings over the suite's database and broker."""
    limited = settings.model_copy(update={**LIMITS, **changes})
    app = create_app(limited, engine=engine, celery=celery)
    asyncio.run(app.state.rate_limiter.close())
    app.state.rate_limiter = RateLimiter.from_settings(limited, window_seconds=WINDOW)
    return LiveServer(app)


@pytest.fixture(scope="module")
def limited(settings: Settings, engine: Engine, celery_app: Celery) -> Iterator[httpx.Client]:
    with (
        limited_server(settings, engine, celery_app) as live,
        httpx.Client(base_url=live.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def _whole_window() -> None:
    """Start a test with at least ten seconds of the window left."""
    left = WINDOW - time.time() % WINDOW
    if left < 10:
        time.sleep(left)


def assert_rate_limited(response: httpx.Response, what: str) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert what in error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


def payment(site: Website) -> dict[str, Any]:
    return {
        "website_id": str(site.id),
        "amount": 49,
        "currency": "USD",
        "provider_payment_id": unique(),
    }


def pageview(site: Website, visitor: str | None = None) -> dict[str, Any]:
    return {
        "publicKey": site.public_key,
        "visitorId": visitor or str(uuid.uuid4()),
        "sessionId": str(uuid.uuid4()),
        "url": "https://shop.example.com/",
    }


def track(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/api/track", json=body, headers={"User-Agent": CHROME})


def test_a_secret_key_over_its_limit_gets_429_on_every_route(
    limited: httpx.Client, build: Builders, site: Website
) -> None:
    key = build.key(websites_=(site,))
    other = build.key(websites_=(site,))
    answers = [
        limited.post("/api/payments/manual", json=payment(site), headers=bearer(key)),
        limited.get("/api/websites", headers=bearer(key)),
        limited.get("/api/payments", params={"website_id": str(site.id)}, headers=bearer(key)),
        limited.post("/api/payments/manual", json=payment(site), headers=bearer(key)),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200]
    refused = limited.post("/api/payments/manual", json=payment(site), headers=bearer(key))
    assert_rate_limited(refused, "this API key")
    assert "at most 4 per" in refused.json()["error"]["message"]
    assert_rate_limited(limited.get("/api/websites", headers=bearer(key)), "this API key")
    # Another key of the same website has its own allowance.
    assert limited.get("/api/websites", headers=bearer(other)).status_code == 200


def test_concurrent_requests_get_exactly_the_allowance(
    limited: httpx.Client, build: Builders, site: Website
) -> None:
    key = build.key(websites_=(site,))
    with ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(
                lambda _: limited.get("/api/websites", headers=bearer(key)).status_code, range(16)
            )
        )
    assert sorted(codes) == [200] * 4 + [429] * 12


def test_a_websites_public_key_is_limited_across_track_and_identify(
    limited: httpx.Client, build: Builders
) -> None:
    site, other = build.website(), build.website(name="other")
    visitor = str(uuid.uuid4())
    for _ in range(5):
        assert track(limited, pageview(site, visitor)).status_code == 202
    identify = {"publicKey": site.public_key, "visitorId": visitor, "email": "a@example.com"}
    assert limited.post("/api/identify", json=identify).status_code == 200
    assert_rate_limited(track(limited, pageview(site)), "this website's public key")
    assert_rate_limited(limited.post("/api/identify", json=identify), "this website's public key")
    assert track(limited, pageview(other)).status_code == 202


def test_a_public_identify_is_limited_per_visitor(limited: httpx.Client, build: Builders) -> None:
    site = build.website()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for visitor in (first, second):
        assert track(limited, pageview(site, visitor)).status_code == 202

    def identify(visitor: str, n: int) -> httpx.Response:
        return limited.post(
            "/api/identify",
            json={"publicKey": site.public_key, "visitorId": visitor, "email": f"{n}@example.com"},
        )

    assert [identify(first, n).status_code for n in range(2)] == [200, 200]
    assert_rate_limited(identify(first, 3), "identify calls for this visitor")
    assert identify(second, 4).status_code == 200


def test_a_secret_key_identify_is_not_limited_per_visitor(
    limited: httpx.Client, build: Builders, site: Website
) -> None:
    key = build.key(websites_=(site,), scopes=("identify:write",))
    visitor = str(uuid.uuid4())
    answers = [
        limited.post(
            "/api/identify",
            json={"visitorId": visitor, "email": f"{n}@example.com"},
            headers=bearer(key),
        ).status_code
        for n in range(4)
    ]
    assert answers == [200] * 4


def test_zero_disables_a_limit(
    settings: Settings, engine: Engine, celery_app: Celery, build: Builders, site: Website
) -> None:
    key = build.key(websites_=(site,))
    with (
        limited_server(
            settings,
            engine,
            celery_app,
            rate_limit_secret_per_minute=0,
            rate_limit_public_per_minute=0,
        ) as live,
        httpx.Client(base_url=live.url) as client,
    ):
        assert {client.get("/api/websites", headers=bearer(key)).status_code for _ in range(8)} == {
            200
        }
        assert {track(client, pageview(site)).status_code for _ in range(8)} == {202}


def test_payments_go_through_when_the_limiter_cannot_reach_redis(
    settings: Settings,
    engine: Engine,
    celery_app: Celery,
    build: Builders,
    site: Website,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = build.key(websites_=(site,))
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with (
        limited_server(
            settings,
            engine,
            celery_app,
            rate_limit_redis_url=nowhere,
            rate_limit_secret_per_minute=1,
        ) as live,
        httpx.Client(base_url=live.url) as client,
        caplog.at_level(logging.WARNING, logger="api.ratelimit"),
    ):
        started = time.monotonic()
        codes = [
            client.post("/api/payments/manual", json=payment(site), headers=bearer(key)).status_code
            for _ in range(5)
        ]
        elapsed = time.monotonic() - started
    assert codes == [200] * 5
    assert elapsed < 5
    warnings = [r.getMessage() for r in caplog.records if r.name == "api.ratelimit"]
    assert len(warnings) == 1  # then Redis is left alone for a while
    assert "Redis unavailable" in warnings[0]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="counts are shared through Redis")
def test_processes_share_the_counts_through_redis(
    settings: Settings, engine: Engine, celery_app: Celery, build: Builders, site: Website
) -> None:
    key = build.key(websites_=(site,))
    with (
        limited_server(settings, engine, celery_app) as one,
        limited_server(settings, engine, celery_app) as two,
        httpx.Client(base_url=one.url) as first,
        httpx.Client(base_url=two.url) as second,
    ):
        codes = [c.get("/api/websites", headers=bearer(key)).status_code for c in (first, second)]
        codes += [c.get("/api/websites", headers=bearer(key)).status_code for c in (first, second)]
        assert codes == [200] * 4
        assert_rate_limited(second.get("/api/websites", headers=bearer(key)), "this API key")
        assert_rate_limited(first.get("/api/websites", headers=bearer(key)), "this API key")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="counts are shared through Redis")
def test_processes_counting_a_large_allowance_locally_still_share_it() -> None:
    """Under half of a large allowance, a process counts locally and tells Redis soon;
    past it, every hit is counted in Redis first. Two limiters stand for two processes."""
    url = os.environ["REDIS_URL"]

    async def run() -> tuple[list[bool], list[bool]]:
        one, two = (
            RateLimiter(RedisCounter(url, WINDOW), secret=200, public=0, identify=0)
            for _ in range(2)
        )
        key = uuid.uuid4()

        async def allowed(limiter: RateLimiter) -> bool:
            try:
                await limiter.secret_key(key)
            except ApiError as exc:
                return exc.status_code != 429
            return True

        within = [await allowed(one if n % 2 else two) for n in range(200)]
        # What a process counted locally reaches Redis within FLUSH_SECONDS; here at once.
        await asyncio.gather(one.counter.flush(), two.counter.flush())
        beyond = [await allowed(limiter) for limiter in (one, two, one, two)]
        await one.close()
        await two.close()
        return within, beyond

    within, beyond = asyncio.run(run())
    assert all(within)
    assert beyond == [False] * 4


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="counts are shared through Redis")
def test_hits_counted_locally_reach_redis_within_the_flush_interval() -> None:
    url = os.environ["REDIS_URL"]
    bucket = f"key:{uuid.uuid4()}"

    async def run() -> tuple[list[int], int, float]:
        local, asking = RedisCounter(url, WINDOW), RedisCounter(url, WINDOW)
        window = int(time.time() // WINDOW)
        counts = [await local.count([Limit(bucket, 1000, "")], window) or [0] for _ in range(60)]
        started = time.monotonic()
        seen = 0
        while seen < 61 and time.monotonic() - started < 2:
            await asyncio.sleep(FLUSH_SECONDS)
            # An allowance this small is always asked of Redis (and counts one more hit).
            (seen,) = await asking.count([Limit(bucket, 10, "")], window) or [0]
        elapsed = time.monotonic() - started
        await local.close()
        await asking.close()
        return [c[0] for c in counts], seen, elapsed

    counts, seen, elapsed = asyncio.run(run())
    assert counts == list(range(1, 61))
    assert seen >= 61
    assert elapsed < 1


def test_memory_counters_start_again_in_each_window() -> None:
    a, b = Limit("a", 10, "a"), Limit("b", 10, "b")

    async def run() -> list[list[int] | None]:
        counter = MemoryCounter()
        return [
            await counter.count([a, b], 1),
            await counter.count([a, a], 1),
            await counter.count([a], 2),
        ]

    assert asyncio.run(run()) == [[1, 1], [2, 3], [1]]
