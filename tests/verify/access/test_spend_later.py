"""Turns sent before anyone waits for them (`queue_turn`, `spend_later`), in memory and on a
real redis-server: they answer as `take_in_turn` would, a spend nobody waits for is made
before the turns sent after it, and its failure is handled and logged, never raised."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from verify.access.ratelimit import (
    ALL_SPENT,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    ResilientRateLimiter,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_URL = "redis://127.0.0.1:1/0"
#: Bounds the waits of these tests; reaching it fails the test instead of hanging it.
HANG_GUARD_S = 10


@contextlib.asynccontextmanager
async def redis_limiter() -> AsyncIterator[tuple[Redis, str, RedisRateLimiter]]:
    """A Redis limiter of its own namespace (its buckets deleted afterwards)."""
    client = Redis.from_url(REDIS_URL)
    namespace = f"test:{uuid.uuid4().hex}"
    limiter = RedisRateLimiter(client, namespace=namespace, timeout=HANG_GUARD_S)
    try:
        yield client, namespace, limiter
    finally:
        await limiter.aclose()
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
    else:
        async with redis_limiter() as (_, _, limiter):
            yield limiter


async def test_queued_turns_answer_as_turns_taken_one_after_the_other(
        either: RateLimiter) -> None:
    limiter = either
    turns = [limiter.queue_turn((("q", 2, 0.001, 1),)) for _ in range(3)]
    answers = [await limiter.finish_turn(turn) for turn in turns]
    assert answers[:2] == [ALL_SPENT, ALL_SPENT]
    assert answers[2][0] == 0
    assert answers[2][1] > 0


async def test_a_spend_nobody_waits_for_comes_before_the_turns_sent_after_it(
        either: RateLimiter) -> None:
    """Budgets exact across lookups that do not wait for their miss's spend: the next
    turn's peek, sent after it, sees it."""
    limiter = either
    limiter.spend_later((("m", 2, 0.001, 1),))
    assert await limiter.take_in_turn((("m", 2, 0.001, 0),)) == ALL_SPENT
    limiter.spend_later((("m", 2, 0.001, 1),))
    refused, wait = await limiter.take_in_turn((("m", 2, 0.001, 0),))
    assert refused == 0
    assert wait > 0


async def test_a_dropped_turn_is_still_sent_and_nothing_is_left_unretrieved(
        caplog: pytest.LogCaptureFixture) -> None:
    async with redis_limiter() as (_, _, limiter):
        limiter.queue_turn((("d", 1, 0.001, 1),)).drop()  # its request was cancelled
        refused, _ = await limiter.take_in_turn((("d", 1, 0.001, 0),))
        assert refused == 0  # the dropped turn spent the token before this peek
    gc.collect()
    assert "never retrieved" not in caplog.text


async def _until(done: Callable[[], Awaitable[bool]]) -> None:
    """Poll (a hang guard bounds it; nothing here asserts how long it takes)."""
    async with asyncio.timeout(HANG_GUARD_S):
        while not await done():  # noqa: ASYNC110 (state in Redis or buckets: no event)
            await asyncio.sleep(0.005)


async def test_a_spend_refused_for_noscript_loads_the_script_and_is_made() -> None:
    """After a Redis restart (`SCRIPT FLUSH` here) the spend is sent again once the script
    is loaded, in a task of its own, the request long gone."""
    async with redis_limiter() as (client, namespace, limiter):
        await limiter.take("warm", capacity=1, per_second=1)
        await client.script_flush()
        limiter.spend_later((("n", 1, 0.001, 1),))

        async def spent() -> bool:
            return bool(await client.exists(f"{namespace}:s:n") == 1)

        await _until(spent)
        refused, _ = await limiter.take_in_turn((("n", 1, 0.001, 0),))
        assert refused == 0


async def test_a_failed_spend_is_spent_in_memory_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    client = Redis.from_url(DEAD_URL, socket_connect_timeout=0.5)
    memory = MemoryRateLimiter()
    limiter = ResilientRateLimiter(RedisRateLimiter(client, timeout=HANG_GUARD_S), memory)
    try:
        with caplog.at_level(logging.WARNING, logger="verify.ratelimit"):
            limiter.spend_later((("f", 1, 0.001, 1),))

            async def spent() -> bool:
                return memory.take_in_turn_now((("f", 1, 0.001, 0),))[0] == 0

            await _until(spent)
        assert limiter.failures == 1
        assert "rate limiter backend failed" in caplog.text
    finally:
        await client.aclose()


async def test_a_failed_spend_without_a_fallback_is_logged_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    client = Redis.from_url(DEAD_URL, socket_connect_timeout=0.5)
    limiter = RedisRateLimiter(client, timeout=HANG_GUARD_S)
    try:
        with caplog.at_level(logging.WARNING, logger="verify.ratelimit"):
            limiter.spend_later((("g", 1, 0.001, 1),))

            async def logged() -> bool:
                return "nobody waits for failed" in caplog.text

            await _until(logged)
    finally:
        await limiter.aclose()
        await client.aclose()
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_failed_spend_is_spent_in_memory_before_a_turn_sent_after_it() -> None:
    """Redis down: a spend and the next turn fail in the same round trip; the spend, sent
    first, is made in memory before that turn's fallback answers (else its peek passes
    with the budget spent: one lookup past the misses budget per spend)."""
    client = Redis.from_url(DEAD_URL, socket_connect_timeout=0.5)
    memory = MemoryRateLimiter()
    limiter = ResilientRateLimiter(RedisRateLimiter(client, timeout=HANG_GUARD_S), memory)
    try:
        limiter.spend_later((("o", 1, 0.001, 1),))
        turn = limiter.queue_turn((("o", 1, 0.001, 0),))
        refused, wait = await limiter.finish_turn(turn)
        assert refused == 0
        assert wait > 0
    finally:
        await client.aclose()


async def test_a_spend_refused_for_noscript_is_made_before_a_turn_sent_after_it() -> None:
    """After a Redis restart (`SCRIPT FLUSH` here) a spend and the next turn are refused
    together; sent again once the script is loaded, the spend still comes first."""
    async with redis_limiter() as (client, _, limiter):
        await limiter.take("warm", capacity=1, per_second=1)
        await client.script_flush()
        limiter.spend_later((("p", 1, 0.001, 1),))
        turn = limiter.queue_turn((("p", 1, 0.001, 0),))
        refused, wait = await limiter.finish_turn(turn)
        assert refused == 0
        assert wait > 0
