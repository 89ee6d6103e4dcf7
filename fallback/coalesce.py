"""The coalescer of concurrent one-key calls lives in `indexer/coalesce.py`, where the
Elasticsearch store's reads use it too; the replica's Redis round trips import it here, with
`queue`: the call as a future, queued at once, for a caller that overlaps it with other
work without a task of its own (`fallback.redis_trips.RoundTrips.queue`)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from indexer.coalesce import MAX_BATCH
from indexer.coalesce import Coalescer as _Coalescer

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["MAX_BATCH", "Coalescer"]


class Coalescer(_Coalescer[K, V]):
    """`indexer.coalesce.Coalescer` plus `queue`. (`call` is `await queue(key)`; the method
    belongs in `indexer/coalesce.py`, which this module does not own.)"""

    def queue(self, key: K) -> asyncio.Future[V]:
        """`call`'s result as a future, `key` queued before this returns: it goes in the
        next round trip that starts, with the calls queued before it, in their order. The
        caller must retrieve the future's outcome or cancel it (a cancelled call leaves its
        batch running for the others, as with `call`)."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queued.append((key, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="coalescer-flush")
        return future
