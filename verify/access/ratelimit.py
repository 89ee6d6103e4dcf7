"""Token buckets: in Redis when configured (shared by every service process), in memory
otherwise. One interface: `RateLimiter.take` answers how long to wait (0 = go ahead), and
`take_in_turn` spends several budgets of one request in order, stopping at the first that
refuses (one call, and on Redis one round trip, instead of one per budget).
`queue_turn` sends such a turn at once and `finish_turn` waits for its answer, so a request
can read meanwhile without a task for the turn; `spend_later` sends one whose answer nobody
reads (a miss's spend), its failure handled without the request waiting for it.

A bucket holds up to `capacity` tokens and refills at `per_second`; a request spends `cost`
tokens. `cost=0` only asks whether a token is available, spending nothing (used to refuse a
client that has already exhausted a budget before doing any work for it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from redis.exceptions import NoScriptError, RedisError

from fallback.redis_trips import Failed, RoundTrips, unwrap

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

log = logging.getLogger("verify.ratelimit")

#: A round trip to Redis at most (the client's socket timeout is the same in `verify.app`).
DEFAULT_TIMEOUT_S = 0.2


#: One take: bucket, capacity, per_second, cost.
Take = tuple[str, int, float, int]
#: What a spend nobody waits for does when Redis failed it (`RateLimiter.spend_later`).
SpendNow = Callable[[Exception, Sequence[Take]], None]
#: `take_in_turn`'s answer when every take was spent.
ALL_SPENT: tuple[int, float] = (-1, 0.0)


@dataclass(slots=True)
class QueuedTurn:
    """A turn sent (`queue_turn`): `pending` its round trip's future (see
    `fallback.redis_trips.RoundTrips.queue`), or None when it was answered at once
    (`answer`, from memory). `loads`: the script loads seen when it was sent."""

    takes: Sequence[Take]
    pending: asyncio.Future[Any] | None = None
    answer: tuple[int, float] = ALL_SPENT
    loads: int = 0

    def drop(self) -> None:
        """Nobody will wait for it (its request was cancelled): the turn is still sent if
        it was not yet, and its outcome is retrieved, never logged as unretrieved."""
        pending = self.pending
        if pending is not None and not pending.cancel() and not pending.cancelled():
            pending.exception()


class RateLimiter(Protocol):
    #: Whether a take waits on another process (Redis). The lookup path then runs its read
    #: while the take is on its way (`verify.lookup.verification`) instead of after it.
    remote: bool

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        """Spend `cost` tokens if available and return 0.0, else return the seconds to wait."""

    async def take_in_turn(self, takes: Sequence[Take]) -> tuple[int, float]:
        """Spend each take in order, as that many `take` calls would, but stop at the first
        that has to wait, spending nothing of it or of the takes after it. Returns its index
        and wait, or `ALL_SPENT`."""

    def queue_turn(self, takes: Sequence[Take]) -> QueuedTurn:
        """`take_in_turn` sent before this returns; `finish_turn` gives its answer (then, or
        `QueuedTurn.drop`, must follow)."""

    async def finish_turn(self, turn: QueuedTurn) -> tuple[int, float]:
        """The answer of a turn of `queue_turn`."""

    def spend_later(self, takes: Sequence[Take], fallback: SpendNow | None = None) -> None:
        """`take_in_turn` sent before this returns, its answer unread: turns sent after it
        by this process come after it, also when Redis answers `NOSCRIPT` or fails; a
        failure of Redis is given to `fallback` (`ResilientRateLimiter`: spent in memory),
        or logged, never raised."""


class MemoryRateLimiter:
    """Buckets of one process. Bounded: the least recently used buckets are dropped first
    (a dropped bucket comes back full, which only ever errs towards letting a request in).
    A plain dict keeps the order: every take re-inserts its bucket at the end."""

    remote = False

    def __init__(self, max_buckets: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max = max_buckets
        self._clock = clock

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        return self.take_in_turn_now(((bucket, capacity, per_second, cost),))[1]

    async def take_in_turn(self, takes: Sequence[Take]) -> tuple[int, float]:
        return self.take_in_turn_now(takes)

    def queue_turn(self, takes: Sequence[Take]) -> QueuedTurn:
        return QueuedTurn(takes, answer=self.take_in_turn_now(takes))

    async def finish_turn(self, turn: QueuedTurn) -> tuple[int, float]:
        return turn.answer

    def spend_later(self, takes: Sequence[Take], fallback: SpendNow | None = None) -> None:
        self.take_in_turn_now(takes)

    def take_in_turn_now(self, takes: Sequence[Take]) -> tuple[int, float]:
        """`take_in_turn` without a coroutine (a lookup's turn of four takes is made on the
        hot path: `verify.access.service.Access.admit`), one clock read for all. A bucket
        never seen (or dropped) starts full; each is refilled for the time since it was
        last taken from, up to its capacity; a take needs `max(cost, 1)` tokens and spends
        `cost`. Every take moves its bucket to the end of the dict, refused or not, and the
        first bucket (the least recently used) is dropped beyond `max_buckets`."""
        now = self._clock()
        buckets, most = self._buckets, self._max
        for index, (bucket, capacity, per_second, cost) in enumerate(takes):
            state = buckets.pop(bucket, None)
            if state is None:
                tokens = float(capacity)
            else:
                tokens, last = state
                if now > last:
                    tokens += (now - last) * per_second
                if tokens >= capacity:
                    tokens = float(capacity)
            need = cost if cost > 1 else 1
            refused = tokens < need
            buckets[bucket] = (tokens if refused else tokens - cost, now)
            if len(buckets) > most:
                del buckets[next(iter(buckets))]
            if refused:
                return index, (need - tokens) / per_second if per_second > 0 else math.inf
        return ALL_SPENT


# KEYS: the distinct buckets of the batch (every request of a batch spends its key's budget:
# one key, not one per request, for redis-py to pack). ARGV[1]: a JSON array of "slot,
# capacity, per_second, cost, link" for each take in the order asked, slot being the
# bucket's place in KEYS (decoded by Redis's C `cjson`, about 0.2 us a number where Lua's
# own string matching took 0.7); link 1 means "in the same request's turn as the take
# before": skipped ("x") once a take of the turn was refused. One call takes from many
# buckets, the same one maybe several times, one after the other, exactly as that many
# single calls would; the reply is a JSON array of the waits, one per take. Each bucket is
# read once (one MGET for all) and written once at the end, and only if something was spent
# from it (a peek changes nothing: its refill is recomputed the same way next time). A
# bucket is a string "tokens timestamp" (one SET with its expiry, against HSET + EXPIRE)
# that expires once it would be full again. Time comes from the Redis server so all service
# processes share one clock. Measured on this machine for 16 lookups (48 takes, 18 buckets):
# about 270 us of Redis CPU, against 690 us for one HMGET/HSET/EXPIRE per take and
# Lua-parsed numbers.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local numbers = cjson.decode(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local tokens_of, capacity_of, rate_of, spent = {}, {}, {}, {}
local waits = {}
local refused = false
for i = 1, #numbers / 5 do
  local slot = numbers[5 * i - 4]
  local key = KEYS[slot]
  local capacity = numbers[5 * i - 3]
  local rate = numbers[5 * i - 2]
  local cost = numbers[5 * i - 1]
  if numbers[5 * i] == 1 and refused then
    waits[i] = 'x'
  else
    local tokens = tokens_of[key]
    if tokens == nil then
      local raw = stored[slot]
      local last = now
      tokens = capacity
      if raw then
        local space = string.find(raw, ' ', 1, true)
        tokens = tonumber(string.sub(raw, 1, space - 1))
        last = tonumber(string.sub(raw, space + 1))
      end
      tokens = tokens + math.max(0, now - last) * rate
    end
    tokens = math.min(capacity, tokens)
    local need = math.max(cost, 1)
    local wait = 0
    if tokens >= need then
      tokens = tokens - cost
      if cost > 0 then spent[key] = true end
    else
      if rate > 0 then wait = (need - tokens) / rate else wait = -1 end
    end
    tokens_of[key], capacity_of[key], rate_of[key] = tokens, capacity, rate
    refused = wait ~= 0
    waits[i] = wait
  end
end
for _, key in ipairs(KEYS) do
  if spent[key] then
    local tokens, rate = tokens_of[key], rate_of[key]
    local ttl = 1
    if rate > 0 then ttl = math.ceil((capacity_of[key] - tokens) / rate) + 1 end
    redis.call('SET', key, string.format('%.17g %.17g', tokens, now), 'EX', ttl)
  end
end
return cjson.encode(waits)
"""
_SKIPPED = "x"


_SHA = hashlib.sha1(_LUA.encode(), usedforsecurity=False).hexdigest()


class RedisRateLimiter:
    """Turns asked concurrently go to Redis together, as one script call (a lane of
    `fallback.redis_trips`): a round trip costs more CPU than the script's work for dozens
    of buckets. In the service the round trips are the Redis replica's too, so the takes of
    new requests travel with the replica reads of the ones before them (`verify.app`);
    alone, the limiter has round trips of its own on `client`. Each round trip is bounded by
    `timeout` (`TimeoutError`; with borrowed round trips, their owner's bound: the replica's
    `op_timeout`), so a take waits at most two of them. The script is called by its SHA; a
    Redis that does not know it yet (`NOSCRIPT`: first use, a restart) is given it once,
    within `timeout`, however many takes were refused at that moment, and asked again."""

    remote = True

    def __init__(self, client: Redis, namespace: str = "inv:v1:rl",
                 timeout: float = DEFAULT_TIMEOUT_S, *, trips: RoundTrips | None = None,
                 ) -> None:
        self._client = client
        # "s:": bucket state as a string (an earlier version kept hashes under "<ns>:")
        self._prefix = f"{namespace}:s:"
        self._timeout = timeout
        self._owns_trips = trips is None
        self._trips = trips or RoundTrips(client, timeout=timeout)
        self._loading: asyncio.Task[None] | None = None  # the script being given to Redis
        self._script_loads = 0  # how many times the script was given to Redis

    def queue(self, pipe: Pipeline, turns: Sequence[Sequence[Take]]) -> None:
        slots: dict[str, int] = {}  # bucket -> its place in KEYS (1-based, as Lua counts)
        numbers: list[float] = []
        for turn in turns:
            for index, (bucket, capacity, per_second, cost) in enumerate(turn):
                numbers += (slots.setdefault(bucket, len(slots) + 1), capacity, per_second,
                            cost, 1 if index else 0)
        prefix = self._prefix
        pipe.evalsha(_SHA, len(slots), *[prefix + bucket for bucket in slots],
                     orjson.dumps(numbers))

    def parse(self, reply: Any, turns: Sequence[Sequence[Take]]) -> list[tuple[int, float]]:
        waits = orjson.loads(reply)
        answers: list[tuple[int, float]] = []
        at = 0
        for turn in turns:
            answer = ALL_SPENT
            for index, wait in enumerate(waits[at:at + len(turn)]):
                if wait == _SKIPPED:
                    continue
                if wait:
                    answer = (index, math.inf if wait < 0 else float(wait))
                    break
            answers.append(answer)
            at += len(turn)
        return answers

    async def _call(self, takes: Sequence[Take]) -> tuple[int, float]:
        return await self.finish_turn(self.queue_turn(takes))

    def queue_turn(self, takes: Sequence[Take]) -> QueuedTurn:
        if not takes:
            return QueuedTurn(takes)
        return QueuedTurn(takes, self._trips.queue(self, takes), loads=self._script_loads)

    async def finish_turn(self, turn: QueuedTurn) -> tuple[int, float]:
        if turn.pending is None:
            return turn.answer
        try:
            return cast(tuple[int, float], unwrap(await turn.pending))
        except NoScriptError:
            await asyncio.shield(self._load_script(turn.loads))
            return cast(tuple[int, float], await self._trips.call(self, turn.takes))

    def spend_later(self, takes: Sequence[Take], fallback: SpendNow | None = None) -> None:
        """No task and no wait while Redis answers: callbacks look at the outcome. On
        `NOSCRIPT` the spend is sent again by a callback of the script's load, registered
        before the turns refused with it (sent after it) wait for that load, so it is
        queued before theirs; a failure goes to `fallback` in the callback itself, before
        those turns wake to fall back to memory."""
        self._spend(self.queue_turn(takes), fallback, again=True)

    def _spend(self, turn: QueuedTurn, fallback: SpendNow | None, *, again: bool) -> None:
        if turn.pending is not None:
            turn.pending.add_done_callback(partial(self._spent, turn, fallback, again))

    def _spent(self, turn: QueuedTurn, fallback: SpendNow | None, again: bool,
               future: asyncio.Future[Any]) -> None:
        if future.cancelled():  # its round trips were closed (shutdown): not made
            return
        error = future.exception()
        if error is None:
            result = future.result()
            if not isinstance(result, Failed):
                return
            error = result.error
        if again and isinstance(error, NoScriptError):
            loading = self._load_script(turn.loads)
            if loading.done():  # loaded since it was sent: again now, not a callback later
                self._spend_again(turn.takes, fallback, loading)
            else:
                loading.add_done_callback(partial(self._spend_again, turn.takes, fallback))
        else:
            _spend_failed(error, turn.takes, fallback)

    def _spend_again(self, takes: Sequence[Take], fallback: SpendNow | None,
                     loading: asyncio.Future[None]) -> None:
        if loading.cancelled():
            return
        error = loading.exception()
        if error is None:
            self._spend(self.queue_turn(takes), fallback, again=False)
        else:
            _spend_failed(error, takes, fallback)

    def _load_script(self, seen: int) -> asyncio.Future[None]:
        """Redis given the script, unless it was given since the turn was sent (`seen`):
        one load at a time, shared by the turns refused together, done in the order they
        asked for it (a future already done when there is nothing to load)."""
        if self._loading is not None:
            return self._loading
        if self._script_loads != seen:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        self._loading = asyncio.ensure_future(self._give_script())
        return self._loading

    async def _give_script(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.script_load(_LUA)
            self._script_loads += 1
        finally:
            self._loading = None

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        return (await self._call(((bucket, capacity, per_second, cost),)))[1]

    async def take_in_turn(self, takes: Sequence[Take]) -> tuple[int, float]:
        return await self.finish_turn(self.queue_turn(takes)) if takes else ALL_SPENT

    async def aclose(self) -> None:
        """Stop its own round trips (borrowed ones are their owner's to close)."""
        if self._owns_trips:
            await self._trips.aclose()


class NoRateLimiter:
    """Insecure local mode: no keys, so no per-key or per-invoice budgets either."""

    remote = False

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        return 0.0

    async def take_in_turn(self, takes: Sequence[Take]) -> tuple[int, float]:
        return ALL_SPENT

    def take_in_turn_now(self, takes: Sequence[Take]) -> tuple[int, float]:
        return ALL_SPENT

    def queue_turn(self, takes: Sequence[Take]) -> QueuedTurn:
        return QueuedTurn(takes)

    async def finish_turn(self, turn: QueuedTurn) -> tuple[int, float]:
        return ALL_SPENT

    def spend_later(self, takes: Sequence[Take], fallback: SpendNow | None = None) -> None:
        return None


class ResilientRateLimiter:
    """Redis first; when Redis fails (an error, or its own timeout: `RedisRateLimiter` bounds
    every round trip, so no timer is armed here per take), this process's memory buckets
    answer instead, so a Redis outage loosens sharing between processes but never stops
    verification."""

    def __init__(self, primary: RateLimiter, fallback: RateLimiter) -> None:
        self._primary = primary
        self._fallback = fallback
        self.failures = 0
        self.remote = primary.remote

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures % 1000 == 1:
            log.warning("rate limiter backend failed; using in-process buckets",
                        extra={"error": type(exc).__name__, "failures": self.failures})

    async def take(self, bucket: str, capacity: int, per_second: float,
                   cost: int = 1) -> float:
        try:
            return await self._primary.take(bucket, capacity, per_second, cost)
        except (OSError, TimeoutError, RedisError) as exc:
            self._failed(exc)
            return await self._fallback.take(bucket, capacity, per_second, cost)

    async def take_in_turn(self, takes: Sequence[Take]) -> tuple[int, float]:
        try:
            return await self._primary.take_in_turn(takes)
        except (OSError, TimeoutError, RedisError) as exc:
            self._failed(exc)
            return await self._fallback.take_in_turn(takes)

    def queue_turn(self, takes: Sequence[Take]) -> QueuedTurn:
        return self._primary.queue_turn(takes)

    async def finish_turn(self, turn: QueuedTurn) -> tuple[int, float]:
        try:
            return await self._primary.finish_turn(turn)
        except (OSError, TimeoutError, RedisError) as exc:
            self._failed(exc)
            return await self._fallback.take_in_turn(turn.takes)

    def spend_later(self, takes: Sequence[Take], fallback: SpendNow | None = None) -> None:
        self._primary.spend_later(takes, fallback or self._spend_in_memory)

    def _spend_in_memory(self, exc: Exception, takes: Sequence[Take]) -> None:
        self._failed(exc)
        self._fallback.spend_later(takes)


def _spend_failed(error: BaseException, takes: Sequence[Take],
                  fallback: SpendNow | None) -> None:
    """A spend nobody waits for that Redis did not make: to `fallback` when Redis failed,
    else logged, never raised."""
    if fallback is not None and isinstance(error, OSError | TimeoutError | RedisError):
        fallback(error, takes)
    else:
        log.warning("a rate-limit spend nobody waits for failed",
                    extra={"error": type(error).__name__})
