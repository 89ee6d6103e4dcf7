"""Coalescing concurrent one-key calls into one batched round trip (Redis `MGET`, one script
call for many rate-limit buckets, Elasticsearch `_mget` for the lookups' realtime reads by
id: `indexer/store/es_support.py`).

On this kind of machine (a small VM) a loopback round trip to Redis costs far more than the
work Redis does for it: one `GET` through redis-py takes about 150 us of CPU, mostly the
send and receive system calls, and an `MGET` of 16 keys about 17 us per key. Under load
many requests want one key each at the same moment; `Coalescer.call` queues the key and
one flusher sends everything queued as one batch, then the next batch with whatever queued
meanwhile. Alone, a call costs one round trip as before; under load, the batch grows with
the concurrency and the round trips per call shrink.

Time is bounded per batch, not per call (one timer per round trip instead of one per
caller): a batch that takes longer than `timeout` fails with `TimeoutError`, and so does
every call queued behind it (the backend is stalled; they fail fast rather than wait their
turn). A call therefore waits at most two batches: the one in flight when it queued, and
its own. Other failures are per batch: every caller of a failed batch gets its exception.
A caller that gives up (cancelled, its own timeout) leaves the batch running for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: Keys per round trip at most: bounds one command's size and the work Redis does at once.
MAX_BATCH = 256


class Coalescer(Generic[K, V]):
    """`run` takes the queued keys in call order and returns one result per key."""

    def __init__(self, run: Callable[[Sequence[K]], Awaitable[Sequence[V]]], *,
                 timeout: float, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1 or timeout <= 0:
            raise ValueError("max_batch must be at least 1 and timeout positive")
        self._run = run
        self._timeout = timeout
        self._max_batch = max_batch
        self._queued: list[tuple[K, asyncio.Future[V]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, key: K) -> V:
        return await self.queue(key)

    def queue(self, key: K) -> asyncio.Future[V]:
        """`call`'s result as a future, `key` queued before this returns: it goes in the
        next round trip that starts, with the calls queued before it, in their order (for a
        caller that overlaps the call with other work without a task of its own:
        `fallback.redis_trips.RoundTrips.queue`). The caller must retrieve the future's
        outcome or cancel it (a cancelled call leaves its batch running for the others, as
        with `call`)."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queued.append((key, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="coalescer-flush")
        return future

    async def _flush(self) -> None:
        try:
            # One more turn of the event loop before the first round trip: the callers whose
            # requests arrived in the same read of the sockets as the first caller's queue
            # here too (under load, batches of about 15 instead of 10 with 32 clients).
            # Alone, a call waits one loop turn (microseconds) longer.
            await asyncio.sleep(0)
            while self._queued:
                batch = self._queued[:self._max_batch]
                del self._queued[:self._max_batch]
                await self._send(batch)
        finally:
            self._flusher = None

    async def _send(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._run([key for key, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} keys answered {len(results)}")
        except asyncio.CancelledError:
            _cancel(batch)
            raise
        except TimeoutError as exc:
            queued, self._queued = self._queued, []
            _fail(batch + queued, exc)
        except Exception as exc:  # each caller gets the batch's failure
            _fail(batch, exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Stop the flusher (shutdown); callers still waiting are cancelled."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        queued, self._queued = self._queued, []
        _cancel(queued)


def _fail(calls: Sequence[tuple[object, asyncio.Future[V]]], exc: Exception) -> None:
    for _, future in calls:
        if not future.done():
            future.set_exception(exc)


def _cancel(calls: Sequence[tuple[object, asyncio.Future[V]]]) -> None:
    for _, future in calls:
        future.cancel()
