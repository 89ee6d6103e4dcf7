"""Token buckets: in Redis when configured (shared by every service process), in memory
otherwise. One interface, `RateLimiter.take`, answers how long to wait (0 = go ahead).

A bucket holds up to `capacity` tokens and refills at `per_second`; a request spends `cost`
tokens. `cost=0` only asks whether a token is available, spending nothing (used to refuse a
client that has already exhausted a budget before doing any work for it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("verify.ratelimit")


class RateLimiter(Protocol):
    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        """Spend `cost` tokens if available and return 0.0, else return the seconds to wait."""


def _refill(tokens: float, last: float, now: float, capacity: int, per_second: float) -> float:
    return min(float(capacity), tokens + max(0.0, now - last) * per_second)


class MemoryRateLimiter:
    """Buckets of one process. Bounded: the least recently used buckets are dropped first
    (a dropped bucket comes back full, which only ever errs towards letting a request in)."""

    def __init__(self, max_buckets: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max = max_buckets
        self._clock = clock

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        now = self._clock()
        tokens, last = self._buckets.pop(bucket, (float(capacity), now))
        tokens = _refill(tokens, last, now, capacity, per_second)
        need = max(cost, 1)
        if tokens >= need:
            tokens -= cost
            wait = 0.0
        else:
            wait = (need - tokens) / per_second if per_second > 0 else math.inf
        self._buckets[bucket] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


# KEYS[1] bucket; ARGV capacity, per_second, cost. Time comes from the Redis server so all
# service processes share one clock; the bucket expires once it would be full again.
_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local last = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local need = math.max(cost, 1)
local wait = 0
if tokens >= need then
  tokens = tokens - cost
else
  if rate > 0 then wait = (need - tokens) / rate else wait = -1 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
local ttl = 1
if rate > 0 then ttl = math.ceil((capacity - tokens) / rate) + 1 end
redis.call('EXPIRE', KEYS[1], ttl)
return tostring(wait)
"""


class RedisRateLimiter:
    def __init__(self, client: Redis, namespace: str = "inv:v1:rl") -> None:
        self._client = client
        self._script = client.register_script(_LUA)
        self._namespace = namespace

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        raw = await self._script(keys=[f"{self._namespace}:{bucket}"],
                                 args=[capacity, repr(float(per_second)), cost])
        wait = float(raw)
        return math.inf if wait < 0 else wait


class NoRateLimiter:
    """Insecure local mode: no keys, so no per-key or per-invoice budgets either."""

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        return 0.0


class ResilientRateLimiter:
    """Redis first, bounded by `timeout`; when Redis fails, this process's memory buckets
    answer instead, so a Redis outage loosens sharing between processes but never stops
    verification."""

    def __init__(self, primary: RateLimiter, fallback: RateLimiter,
                 timeout: float = 0.2) -> None:
        self._primary = primary
        self._fallback = fallback
        self._timeout = timeout
        self.failures = 0

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._primary.take(bucket, capacity, per_second, cost)
        except (OSError, TimeoutError, RedisError) as exc:
            self.failures += 1
            if self.failures % 1000 == 1:
                log.warning("rate limiter backend failed; using in-process buckets",
                            extra={"error": type(exc).__name__, "failures": self.failures})
            return await self._fallback.take(bucket, capacity, per_second, cost)
