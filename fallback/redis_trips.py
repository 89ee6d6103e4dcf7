"""One Redis round trip for everything the request path asks of Redis at that moment.

On this kind of machine (a small VM) a round trip costs about 180 us of CPU whatever it
carries: a `PING` costs as much as a `GET`, and an `MGET` of 15 documents 250 us (mostly the
system calls). A lookup answered from the Redis replica asks Redis two things: its
rate-limit buckets (`verify.access.ratelimit`) and the replica's document
(`fallback.replica`). Each kind of call is a `Lane`; `RoundTrips` coalesces the calls of
every lane (`fallback.coalesce`: order, timeouts, give-ups as documented there) and sends
what all lanes have queued when a round trip starts as one pipeline, one command per lane.
Under load the rate-limit takes of new requests then travel with the replica reads of the
requests before them: one round trip per batch instead of two (measured: 390-470 us of CPU
for an `MGET` of 15 and a script call over 45 buckets in one pipeline, 515-570 us apart).

Failures: a pipeline that fails as a whole (connection refused, timeout) fails every call in
it, as a coalesced batch does; an error reply of one lane's command (e.g. `NOSCRIPT`) fails
only that lane's calls, with that error.

`call` waits for its result; `queue` queues the call at once and hands back its future
(a result, or `Failed`, or the round trip's exception), so a request can send a rate-limit
turn and read the replica in one round trip without a task for either
(`verify.lookup.verification`), or send a spend it does not wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fallback.coalesce import MAX_BATCH, Coalescer

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

V = TypeVar("V")
K_contra = TypeVar("K_contra", contravariant=True)


class Lane(Protocol[K_contra]):
    """One kind of batched call: how a batch of its keys becomes one pipelined command, and
    how that command's reply becomes one result per key (in the keys' order)."""

    def queue(self, pipe: Pipeline, keys: Sequence[K_contra]) -> None: ...

    def parse(self, reply: Any, keys: Sequence[K_contra]) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Failed:
    """A queued call's result when its lane's command failed (`unwrap` raises `error`)."""

    error: Exception


def unwrap(result: Any) -> Any:
    """A queued call's result, or its lane's failure raised."""
    if isinstance(result, Failed):
        raise result.error
    return result


class RoundTrips:
    """Shared by every lane that talks to the same Redis (`client`). `timeout` bounds each
    round trip; `max_batch` the calls in one, all lanes together."""

    def __init__(self, client: Redis, *, timeout: float, max_batch: int = MAX_BATCH) -> None:
        self.client = client
        self._calls: Coalescer[tuple[Lane[Any], Any], Any] = Coalescer(
            self._run, timeout=timeout, max_batch=max_batch)

    async def call(self, lane: Lane[V], key: V) -> Any:
        """`lane`'s result for `key`; raises what failed its round trip or its command."""
        return unwrap(await self._calls.queue((lane, key)))

    def queue(self, lane: Lane[V], key: V) -> asyncio.Future[Any]:
        """`call` as a future, queued before this returns: its result, `Failed` when its
        lane's command failed (see `unwrap`), or the round trip's exception. Its outcome
        must be retrieved or the future cancelled."""
        return self._calls.queue((lane, key))

    async def _run(self, calls: Sequence[tuple[Lane[Any], Any]]) -> list[Any]:
        by_lane: dict[Lane[Any], list[int]] = {}
        for index, (lane, _) in enumerate(calls):
            by_lane.setdefault(lane, []).append(index)
        pipe = self.client.pipeline(transaction=False)
        batches = []
        for lane, indices in by_lane.items():
            keys = [calls[i][1] for i in indices]
            lane.queue(pipe, keys)
            batches.append((lane, indices, keys))
        replies = await pipe.execute(raise_on_error=False)
        results: list[Any] = [None] * len(calls)
        for (lane, indices, keys), reply in zip(batches, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                values = lane.parse(reply, keys)
                if len(values) != len(keys):
                    raise RuntimeError(f"a batch of {len(keys)} keys answered {len(values)}")
            except Exception as exc:  # this lane's calls fail, the other lanes' do not
                values = [Failed(exc)] * len(keys)
            for index, value in zip(indices, values, strict=True):
                results[index] = value
        return results

    async def aclose(self) -> None:
        """Stop the flusher (shutdown); calls still waiting are cancelled."""
        await self._calls.aclose()
