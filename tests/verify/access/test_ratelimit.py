"""Token buckets: the same behaviour in memory and in a real redis-server."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from verify.access.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    ResilientRateLimiter,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = Redis.from_url(REDIS_URL)
    namespace = f"test:{uuid.uuid4().hex}"
    try:
        yield RedisRateLimiter(client, namespace=namespace)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_capacity_then_wait(limiter: RateLimiter) -> None:
    waits = [await limiter.take("b", capacity=3, per_second=0.5) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 2.0  # one token takes 2 s at 0.5/s


async def test_peek_spends_nothing(limiter: RateLimiter) -> None:
    for _ in range(5):
        assert await limiter.take("p", capacity=1, per_second=0.01, cost=0) == 0.0
    assert await limiter.take("p", capacity=1, per_second=0.01) == 0.0
    assert await limiter.take("p", capacity=1, per_second=0.01, cost=0) > 0


async def test_buckets_are_independent(limiter: RateLimiter) -> None:
    assert await limiter.take("x", capacity=1, per_second=0.01) == 0.0
    assert await limiter.take("x", capacity=1, per_second=0.01) > 0
    assert await limiter.take("y", capacity=1, per_second=0.01) == 0.0


async def test_refill(limiter: RateLimiter) -> None:
    assert await limiter.take("r", capacity=1, per_second=200) == 0.0
    assert await limiter.take("r", capacity=1, per_second=200) > 0
    await asyncio.sleep(0.05)  # ten tokens' worth of refill; the bucket holds one
    assert await limiter.take("r", capacity=1, per_second=200) == 0.0


async def test_zero_rate_never_refills(limiter: RateLimiter) -> None:
    assert await limiter.take("z", capacity=1, per_second=0) == 0.0
    assert math.isinf(await limiter.take("z", capacity=1, per_second=0))


def test_memory_buckets_are_bounded() -> None:
    limiter = MemoryRateLimiter(max_buckets=10)
    for n in range(100):
        asyncio.run(limiter.take(f"k{n}", capacity=1, per_second=1))
    assert len(limiter._buckets) == 10


async def test_unreachable_redis_falls_back_to_memory() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)
    try:
        limiter = ResilientRateLimiter(RedisRateLimiter(client), MemoryRateLimiter(),
                                       timeout=0.5)
        assert await limiter.take("f", capacity=1, per_second=0.01) == 0.0
        assert await limiter.take("f", capacity=1, per_second=0.01) > 0
        assert limiter.failures == 2
    finally:
        await client.aclose()
