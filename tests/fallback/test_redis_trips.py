"""Shared round trips on a real redis-server: lanes queued together travel in one pipeline,
each gets its own results, and one lane's error reply fails that lane only. Also the rate
limiter and the replica sharing them, as the service wires them (`verify.app`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from fallback.redis_trips import Failed, RoundTrips, unwrap
from fallback.replica import open_redis_replica
from verify.access.ratelimit import RedisRateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
#: Bounds every round trip of these tests; reaching it fails the test instead of hanging it.
HANG_GUARD_S = 10


class Strings:
    """A lane reading string keys with one MGET per batch; records each pipeline it joined."""

    def __init__(self) -> None:
        self.pipes: list[int] = []

    def queue(self, pipe: Any, keys: Sequence[str]) -> None:
        self.pipes.append(id(pipe))
        pipe.mget(list(keys))

    def parse(self, reply: Any, keys: Sequence[str]) -> list[Any]:
        return [None if v is None else v.decode() for v in reply]


class UnknownScript(Strings):
    """A lane whose command Redis refuses (`NOSCRIPT`)."""

    def queue(self, pipe: Any, keys: Sequence[str]) -> None:
        self.pipes.append(id(pipe))
        pipe.evalsha("0" * 40, len(keys), *keys)


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-trips-{uuid.uuid4().hex[:12]}"


async def test_lanes_queued_together_share_one_pipeline(client: Redis, prefix: str) -> None:
    await client.set(f"{prefix}:a", "A", ex=60)
    await client.set(f"{prefix}:b", "B", ex=60)
    trips = RoundTrips(client, timeout=HANG_GUARD_S)
    first, second = Strings(), Strings()
    try:
        results = await asyncio.gather(
            trips.call(first, f"{prefix}:a"), trips.call(second, f"{prefix}:b"),
            trips.call(first, f"{prefix}:missing"), trips.call(second, f"{prefix}:a"))
    finally:
        await trips.aclose()
    assert list(results) == ["A", "B", None, "A"]
    assert len(first.pipes) == len(second.pipes) == 1
    assert first.pipes == second.pipes  # one pipeline, so one round trip


async def test_an_error_reply_fails_only_its_lane(client: Redis, prefix: str) -> None:
    await client.set(f"{prefix}:a", "A", ex=60)
    trips = RoundTrips(client, timeout=HANG_GUARD_S)
    good, bad = Strings(), UnknownScript()
    try:
        results = await asyncio.gather(trips.call(good, f"{prefix}:a"),
                                       trips.call(bad, f"{prefix}:x"),
                                       trips.call(bad, f"{prefix}:y"),
                                       return_exceptions=True)
    finally:
        await trips.aclose()
    assert results[0] == "A"
    assert [type(r) for r in results[1:]] == [NoScriptError, NoScriptError]
    assert good.pipes == bad.pipes


async def test_a_dead_redis_fails_every_lane_of_the_trip() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    trips = RoundTrips(dead, timeout=HANG_GUARD_S)
    try:
        results = await asyncio.gather(trips.call(Strings(), "a"),
                                       trips.call(UnknownScript(), "b"),
                                       return_exceptions=True)
    finally:
        await trips.aclose()
        await dead.aclose()
    assert [type(r) for r in results] == [RedisConnectionError, RedisConnectionError]


async def test_the_limiter_and_the_replica_share_round_trips(client: Redis,
                                                             prefix: str) -> None:
    """As in the service: takes and replica reads asked together go in one pipeline, and the
    limiter gives Redis its script again after a `SCRIPT FLUSH` (a restarted Redis)."""
    namespace = f"{prefix}:v1"
    async with open_redis_replica(REDIS_URL, namespace=namespace) as replica:
        await replica.put_many([{"doc_id": "vn:1", "authority_code": None, "x": 1}])
        limiter = RedisRateLimiter(replica.trips.client, namespace=f"{namespace}:rl",
                                   trips=replica.trips)
        await client.script_flush()
        doc, wait = await asyncio.gather(replica.get("vn:1"),
                                         limiter.take("k", capacity=1, per_second=0.01))
        assert doc is not None
        assert (doc["x"], wait) == (1, 0.0)
        assert await limiter.take("k", capacity=1, per_second=0.01) > 0  # spent, in Redis
        await limiter.aclose()  # borrowed round trips: still usable by the replica
        assert await replica.get("vn:1") == doc
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


async def _script_loads(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_script|load", {}).get("calls", 0))


async def test_takes_refused_together_for_noscript_load_the_script_once(
        client: Redis, prefix: str) -> None:
    """After a Redis restart (`SCRIPT FLUSH` here) a burst of takes is refused `NOSCRIPT`
    together; one of them gives Redis the script, the others wait for it (80 loads at once
    used to exhaust the shared connection pool)."""
    limiter = RedisRateLimiter(client, namespace=f"{prefix}:rl", timeout=HANG_GUARD_S)
    try:
        await limiter.take("warm", capacity=1, per_second=1)
        await client.script_flush()
        before = await _script_loads(client)
        waits = await asyncio.gather(*(limiter.take(f"b{i}", capacity=1, per_second=1)
                                       for i in range(80)))
        assert waits == [0.0] * 80
        assert await _script_loads(client) - before == 1
    finally:
        await limiter.aclose()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)


async def test_a_queued_call_travels_with_the_calls_made_after_it(client: Redis,
                                                                   prefix: str) -> None:
    """`queue` puts the call in the next round trip before it returns (no task, nothing
    awaited): a rate-limit turn queued so shares the replica read awaited after it."""
    await client.set(f"{prefix}:a", "A", ex=60)
    trips = RoundTrips(client, timeout=HANG_GUARD_S)
    first, second, bad = Strings(), Strings(), UnknownScript()
    try:
        queued = trips.queue(first, f"{prefix}:a")
        failing = trips.queue(bad, f"{prefix}:x")
        assert await trips.call(second, f"{prefix}:missing") is None
        assert unwrap(await queued) == "A"
        failed = await failing
    finally:
        await trips.aclose()
    assert isinstance(failed, Failed)
    assert isinstance(failed.error, NoScriptError)
    with pytest.raises(NoScriptError):
        unwrap(failed)
    assert first.pipes == second.pipes == bad.pipes  # one pipeline, so one round trip
