"""Rate limits per secret key and per website, counted in fixed one-minute windows.

With Redis the counts are shared by every API process. A process asks Redis for
a bucket's count the first time it sees the bucket in a window, and whenever the
bucket may be near its limit: such checks are coalesced, one Lua call (INCRBY, and
EXPIRE on a new counter, per bucket) answering every request waiting at that
moment, so a request costs at most one round trip. A bucket well under a large
limit (at most half used, as far as this process knows) is let through at once and
its hits are sent to Redis within `FLUSH_SECONDS`, in the same kind of call; the
hot path then costs a few dictionary updates. A bucket found over its limit is
refused in this process until its window ends, without asking Redis again.

If Redis cannot be reached the limiter fails open: the request goes through, a
warning is logged, and Redis is left alone for a few seconds. Payments never
wait on the limiter being down. Without Redis (the embedded mode) each process
keeps its own exact counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.requests import Request

from api.batching import GroupCommitter
from api.errors import ApiError
from config import Settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "metrivo:rl:"
REDIS_TIMEOUT_SECONDS = 0.25
# After Redis failed, requests go through unchecked this long before it is tried again.
REDIS_RETRY_SECONDS = 5.0
FLUSH_SECONDS = 0.02
# Allowances this small are always checked in Redis: exact, and cheap at such rates.
ALWAYS_ASK_BELOW = 100
MAX_BATCH = 500
MAX_BUCKETS = 100_000

# Adds ARGV[i + 1] to the counter KEYS[i] (a bucket may come several times, one per
# request) and returns the new counts; a new counter expires after ARGV[1] seconds.
COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCRBY', key, ARGV[i + 1])
  if n == tonumber(ARGV[i + 1]) then redis.call('EXPIRE', key, ARGV[1]) end
  counts[i] = n
end
return counts
"""

# What one call to Redis carries for one request (or one flush): the window, and
# (bucket, hits) pairs.
Increments = tuple[int, list[tuple[str, int]]]


@dataclass(frozen=True)
class Limit:
    """A counter and its allowance per window; `what` names it in the 429 message."""

    bucket: str
    per_window: int
    what: str


class Counter(Protocol):
    async def count(self, limits: Sequence[Limit], window: int) -> list[int] | None:
        """Count one hit on each bucket in `window`; their counts, or None if unknown."""

    async def flush(self) -> None:
        """Make every hit counted so far visible to the other processes."""

    async def close(self) -> None: ...


class MemoryCounter:
    """Counters of this process only (the embedded mode)."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self._max_buckets = max_buckets
        self._window = -1
        self._counts: dict[str, int] = {}

    async def count(self, limits: Sequence[Limit], window: int) -> list[int] | None:
        if window != self._window or len(self._counts) >= self._max_buckets:
            self._window = window
            self._counts = {}
        counts = []
        for limit in limits:
            n = self._counts.get(limit.bucket, 0) + 1
            self._counts[limit.bucket] = n
            counts.append(n)
        return counts

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisCounter:
    """Counters in Redis, shared by every process; fails open when Redis is unreachable."""

    def __init__(self, url: str, window_seconds: int = WINDOW_SECONDS) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._script = self._client.register_script(COUNT_SCRIPT)
        self._ttl = window_seconds + 10
        self._down_until = 0.0
        self._window = -1
        self._known: dict[str, int] = {}  # bucket -> its count when Redis last answered
        self._unsent: dict[str, int] = {}  # bucket -> hits let through here, not yet sent
        self._flush: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._batcher: GroupCommitter[Increments, list[int] | None] = GroupCommitter(
            self._count_batch, max_size=MAX_BATCH, concurrency=1, name="rate limits"
        )

    async def count(self, limits: Sequence[Limit], window: int) -> list[int] | None:
        if time.monotonic() < self._down_until:
            return None
        if window != self._window or len(self._known) >= MAX_BUCKETS:
            self._window = window
            self._known, self._unsent = {}, {}
        known, unsent = self._known, self._unsent
        estimates = []
        for limit in limits:
            if limit.bucket not in known:
                break
            estimate = known[limit.bucket] + unsent.get(limit.bucket, 0) + 1
            if limit.per_window < ALWAYS_ASK_BELOW or estimate > limit.per_window // 2:
                break
            estimates.append(estimate)
        else:  # well under every limit: count here, tell Redis soon
            for limit in limits:
                unsent[limit.bucket] = unsent.get(limit.bucket, 0) + 1
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._send)
            return estimates
        hits = [(limit.bucket, 1 + unsent.pop(limit.bucket, 0)) for limit in limits]
        counts = await self._batcher.submit((window, hits))
        self._learn(window, hits, counts)
        return counts

    def _send(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("rate limiter: counts not sent: %s", type(exc).__name__)

    async def flush(self) -> None:
        """Send the hits let through here and not sent yet."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if not self._unsent:
            return
        window, hits = self._window, list(self._unsent.items())
        self._unsent.clear()
        self._learn(window, hits, await self._batcher.submit((window, hits)))

    def _learn(self, window: int, hits: list[tuple[str, int]], counts: list[int] | None) -> None:
        if counts is None or window != self._window:
            return
        for (bucket, _), n in zip(hits, counts, strict=True):
            self._known[bucket] = max(n, self._known.get(bucket, 0))

    def _count_batch(self, batch: Sequence[Increments]) -> list[list[int] | None]:
        if time.monotonic() < self._down_until:  # queued before a call found Redis down
            return [None] * len(batch)
        keys = [f"{KEY_PREFIX}{window}:{bucket}" for window, hits in batch for bucket, _ in hits]
        amounts = [n for _, hits in batch for _, n in hits]
        try:
            counts = [int(n) for n in self._script(keys=keys, args=[self._ttl, *amounts])]
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "rate limiter: Redis unavailable (%s); requests go through unlimited for %.0fs",
                type(exc).__name__,
                REDIS_RETRY_SECONDS,
            )
            return [None] * len(batch)
        results: list[list[int] | None] = []
        start = 0
        for _, hits in batch:
            results.append(counts[start : start + len(hits)])
            start += len(hits)
        return results

    async def close(self) -> None:
        await self.flush()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        await self._batcher.close()
        self._client.close()


class RateLimiter:
    """The allowances are per window of `window_seconds` (0: no limit)."""

    def __init__(
        self,
        counter: Counter,
        *,
        secret: int,
        public: int,
        identify: int,
        window_seconds: int = WINDOW_SECONDS,
    ) -> None:
        self.counter = counter
        self._window_seconds = window_seconds
        self._secret = secret
        self._public = public
        self._identify = identify
        self._unit = "minute" if window_seconds == 60 else f"{window_seconds} seconds"
        # Buckets already over their limit in window `_blocked_window`.
        self._blocked_window = -1
        self._blocked: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, window_seconds: int = WINDOW_SECONDS) -> RateLimiter:
        """The configured per-minute allowances, counted in Redis if there is one.

        With another `window_seconds` (tests), the same allowances apply per window.
        """
        url = settings.rate_limit_redis
        counter: Counter = RedisCounter(url, window_seconds) if url else MemoryCounter()
        return cls(
            counter,
            secret=settings.rate_limit_secret_per_minute,
            public=settings.rate_limit_public_per_minute,
            identify=settings.rate_limit_identify_public_per_minute,
            window_seconds=window_seconds,
        )

    async def secret_key(self, key_id: uuid.UUID) -> None:
        """429 when this secret key is over its limit."""
        await self.check(Limit(f"key:{key_id}", self._secret, "this API key"))

    async def public_key(self, website_id: uuid.UUID, visitor_id: uuid.UUID | None = None) -> None:
        """429 when the website's public key is over its limit (or, for an identify of
        `visitor_id`, that visitor is)."""
        limits = [Limit(f"site:{website_id}", self._public, "this website's public key")]
        if visitor_id is not None:
            limits.append(
                Limit(
                    f"identify:{website_id}:{visitor_id}",
                    self._identify,
                    "identify calls for this visitor",
                )
            )
        await self.check(*limits)

    async def check(self, *limits: Limit) -> None:
        active = [limit for limit in limits if limit.per_window > 0]
        if not active:
            return
        now = time.time()
        window = int(now // self._window_seconds)
        if window != self._blocked_window:
            self._blocked_window = window
            self._blocked = set()
        over = [limit for limit in active if limit.bucket in self._blocked]
        if not over:
            counts = await self.counter.count(active, window)
            if counts is None:
                return
            over = [limit for limit, n in zip(active, counts, strict=True) if n > limit.per_window]
            if over and window == self._blocked_window:
                if len(self._blocked) >= MAX_BUCKETS:
                    self._blocked.clear()
                self._blocked.update(limit.bucket for limit in over)
        if over:
            retry_after = max(1, math.ceil((window + 1) * self._window_seconds - now))
            raise ApiError(
                429,
                "rate_limited",
                f"Too many requests for {over[0].what}: at most {over[0].per_window} per "
                f"{self._unit}. Retry after {retry_after} seconds.",
                headers={"Retry-After": str(retry_after)},
            )

    async def close(self) -> None:
        await self.counter.close()


def rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter
