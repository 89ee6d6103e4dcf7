"""Token buckets: the same behaviour in memory and in a real redis-server."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from verify.access.ratelimit import (
    ALL_SPENT,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    ResilientRateLimiter,
    Take,
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
    """Two takes in one turn happen at one instant (one clock reading, on Redis one TIME), so
    the second waits whatever the machine's load; then the bucket refills by itself (polled,
    never a timed assertion: a loaded machine only makes the poll shorter)."""
    refused, wait = await limiter.take_in_turn((("r", 1, 50.0, 1), ("r", 1, 50.0, 1)))
    assert refused == 1
    assert 0 < wait <= 0.02 + 1e-9  # one token at 50/s
    for _ in range(1000):
        if await limiter.take("r", capacity=1, per_second=50.0) == 0.0:
            break
        await asyncio.sleep(0.005)
    else:
        pytest.fail("the bucket never refilled")


async def test_concurrent_takes_spend_like_one_after_the_other(limiter: RateLimiter) -> None:
    """On Redis, takes asked together go out as one script call, in the order asked."""
    waits = await asyncio.gather(*(limiter.take("c", capacity=5, per_second=0.01)
                                   for _ in range(8)),
                                 limiter.take("d", capacity=1, per_second=0.01))
    assert waits[:5] == [0.0] * 5
    assert all(wait > 0 for wait in waits[5:8])
    assert waits[8] == 0.0


async def test_a_turn_spends_in_order_and_stops_at_the_first_refusal(
        limiter: RateLimiter) -> None:
    turn = (("t1", 1, 0.01, 0), ("t2", 2, 0.01, 1), ("t3", 1, 0.01, 1))
    assert await limiter.take_in_turn(turn) == ALL_SPENT
    refused, wait = await limiter.take_in_turn(turn)  # t3 is empty now
    assert refused == 2
    assert wait > 0
    # t2 was spent by that turn (its second token), so the next turn stops there, and t3
    # is left as it was: still refusing, and not charged again.
    refused, _ = await limiter.take_in_turn(turn)
    assert refused == 1
    assert await limiter.take("t1", capacity=1, per_second=0.01, cost=0) == 0.0
    assert await limiter.take_in_turn(()) == ALL_SPENT


async def test_a_refused_peek_spends_nothing_after_it(limiter: RateLimiter) -> None:
    assert await limiter.take("gate", capacity=1, per_second=0.01) == 0.0
    refused, _ = await limiter.take_in_turn((("gate", 1, 0.01, 0), ("spend", 1, 0.01, 1)))
    assert refused == 0
    assert await limiter.take("spend", capacity=1, per_second=0.01) == 0.0  # still full


async def test_concurrent_turns_are_independent(limiter: RateLimiter) -> None:
    """On Redis these go out in one script call; a refusal ends only its own turn."""
    assert await limiter.take("shut", capacity=1, per_second=0.01) == 0.0
    answers = await asyncio.gather(
        limiter.take_in_turn((("shut", 1, 0.01, 0), ("a", 1, 0.01, 1))),
        limiter.take_in_turn((("open1", 1, 0.01, 0), ("b", 1, 0.01, 1))),
        limiter.take_in_turn((("open2", 1, 0.01, 1),)))
    assert [refused for refused, _ in answers] == [0, -1, -1]
    assert await limiter.take("a", capacity=1, per_second=0.01) == 0.0
    assert await limiter.take("b", capacity=1, per_second=0.01) > 0


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
        limiter = ResilientRateLimiter(RedisRateLimiter(client, timeout=0.5),
                                       MemoryRateLimiter())
        assert await limiter.take("f", capacity=1, per_second=0.01) == 0.0
        assert await limiter.take("f", capacity=1, per_second=0.01) > 0
        assert (await limiter.take_in_turn((("f", 1, 0.01, 0),)))[0] == 0
        assert limiter.failures == 3
    finally:
        await client.aclose()


async def test_a_stalled_redis_falls_back_to_memory_within_two_round_trips() -> None:
    """A server that accepts and never answers: each take fails by the limiter's timeout."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        limiter = ResilientRateLimiter(RedisRateLimiter(client, timeout=0.2),
                                       MemoryRateLimiter())
        async with asyncio.timeout(10):  # a hang guard, not a timing assertion
            waits = await asyncio.gather(*(limiter.take("s", capacity=2, per_second=0.01)
                                           for _ in range(3)))
        assert sorted(waits)[:2] == [0.0, 0.0]
        assert sorted(waits)[2] > 0
        assert limiter.failures == 3
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_redis_buckets_are_strings_written_only_when_spent() -> None:
    """One SET with its expiry per bucket spent from; a peek writes nothing; a hash left by
    the earlier format (directly under the namespace) is not read."""
    client = Redis.from_url(REDIS_URL)
    namespace = f"test:{uuid.uuid4().hex}"
    try:
        await client.hset(f"{namespace}:old", mapping={"tokens": "0", "ts": "0"})
        limiter = RedisRateLimiter(client, namespace=namespace)
        turn = (("peeked", 5, 0.01, 0), ("spent", 5, 0.01, 1), ("spent", 5, 0.01, 2),
                ("old", 1, 0.01, 1))
        assert await limiter.take_in_turn(turn) == ALL_SPENT
        assert await client.exists(f"{namespace}:s:peeked") == 0
        stored = await client.get(f"{namespace}:s:spent")
        assert isinstance(stored, bytes)
        tokens, _, stamp = stored.partition(b" ")
        assert float(tokens) == pytest.approx(2.0, abs=0.01)
        assert float(stamp) > 0
        assert 0 < await client.ttl(f"{namespace}:s:spent") <= 301  # until full again
        assert await client.exists(f"{namespace}:s:old") == 1
    finally:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class OneByOne:
    """The buckets of `MemoryRateLimiter` as they were before its takes were made inline
    (2749ec1): one take at a time, each a pop, a refill and a re-insert."""

    def __init__(self, max_buckets: int) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}
        self.max = max_buckets

    def take(self, bucket: str, capacity: int, per_second: float, cost: int,
             now: float) -> float:
        state = self.buckets.pop(bucket, None)
        tokens = float(capacity)
        if state is not None:
            tokens, last = state
            tokens = min(float(capacity), tokens + max(0.0, now - last) * per_second)
        need = max(cost, 1)
        wait = 0.0
        if tokens >= need:
            tokens -= cost
        else:
            wait = (need - tokens) / per_second if per_second > 0 else math.inf
        self.buckets[bucket] = (tokens, now)
        if len(self.buckets) > self.max:
            del self.buckets[next(iter(self.buckets))]
        return wait

    def turn(self, takes: list[Take], now: float) -> tuple[int, float]:
        for index, (bucket, capacity, per_second, cost) in enumerate(takes):
            wait = self.take(bucket, capacity, per_second, cost, now)
            if wait:
                return index, wait
        return ALL_SPENT


def test_a_memory_turn_is_its_takes_one_after_the_other() -> None:
    """`take_in_turn_now` (a lookup's turn without a coroutine, its steps inline) leaves the
    buckets exactly as the same takes made one by one would, in the same order (what is
    evicted first), and answers the same: random turns on a few buckets, some refused,
    some peeks, a clock that moves or not, and fewer buckets allowed than a turn has."""
    rng = random.Random(22)
    clock = [100.0]
    turned = MemoryRateLimiter(max_buckets=3, clock=lambda: clock[0])
    single = OneByOne(max_buckets=3)
    answers = []
    for _ in range(3000):
        clock[0] += rng.choice((0.0, 0.0, 0.01, 0.3, 2.0))
        takes = [(f"b{rng.randrange(6)}", rng.choice((1, 2, 5)), rng.choice((0.0, 0.5, 3.0)),
                  rng.choice((0, 1, 1, 2))) for _ in range(rng.randrange(1, 5))]
        answer = turned.take_in_turn_now(takes)
        assert answer == single.turn(takes, clock[0])
        assert list(turned._buckets.items()) == list(single.buckets.items())
        answers.append(answer[0])
    assert {-1, 0, 1, 2, 3} <= set(answers)  # every position refused at some point
