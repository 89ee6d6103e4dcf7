"""The read replica: what verification answers from when the primary index cannot answer.

It holds the flat document of `indexer.codec` (`invoice_to_doc`) for each invoice written
through or read back from the primary: every field a full verification answer needs
(amounts, dates, parties, lifecycle, relations), not just "it exists". A second entry per
authority code holds the same document, so a lookup by MCCQT works degraded too, in one read.

Two implementations behind `Replica`, picked at wiring time:

- `RedisReplica` (distributed deployment): aiocache 0.12's `RedisCache`, built directly (the
  unreleased 1.0 drops redis-py; this module is the one place a switch would touch). Keys live
  under a versioned namespace, `inv:v1:doc:<doc id>` and `inv:v1:code:<code>`, so a change of
  the document shape is a namespace change (`inv:v2`) and the old keys simply expire. Both
  entries of an invoice are written in one `MULTI` with their TTL and the replica's new
  generation (below), so they never disagree; a code entry written before it held the
  document holds the doc id, which a read still follows (one more round trip). The copy
  costs about 780 bytes per invoice with an authority code and saves a round trip on every
  lookup by code.
  Reads are coalesced (`fallback.redis_trips`): the keys that concurrent lookups ask for
  while one `MGET` is in flight go together in the next, in the same pipeline as the rate
  limiter's script call of that moment, so under load a lookup costs a fraction of a round
  trip (one `GET` costs ~180 us of CPU on a small VM, mostly system calls). That `MGET` is
  sent on aiocache's client with aiocache's keys and this module's serializer, but not
  through `multi_get` (a call of its own, a round trip of its own); writes are one `MULTI`
  each on the same client, keys and serializer (aiocache's `multi_set` would be a
  transaction of its own, apart from the generation).
  Values are JSON encoded with orjson: one document (about 780 bytes) costs 0.45 us to encode
  and 1.3 us to decode, against 4.7/4.8 us for the stdlib json aiocache would use and 1.1/2.2
  us (640 bytes) for msgpack (best of 5 x 20,000 on this machine); it also stays readable
  with redis-cli. TTL: 90 days by default, renewed by every put. Demand for verification
  sits in the weeks after issue; the TTL is what clears a namespace left behind by a schema
  bump without `KEYS`. Size: Redis bounds itself (`maxmemory` with `allkeys-lru`, see
  compose.yaml); an evicted or expired entry is a miss, which the caller answers as
  `unconfirmed` and records as a gap, never as `not_found`.
- `MemoryReplica` (embedded default): an LRU of encoded documents in this process, bounded by
  count (100,000 documents, about 90 MB as orjson bytes; a dict per document would take
  three times that), no TTL: it lives and dies with the process, and its job is to cover a
  maintenance window of the primary.

Both tell when what they hold changed (`seen_generation`), so that a lookup's answer from
the replica can be sent again until then (`verify.lookup.reuse`): the in-memory one counts
its writes; on Redis every `put_many` and `delete_many` of any process sets
`inv:v1:generation` to a new random value in the same `MULTI` as its documents (both or
neither, also in an AOF), and each process reads it back with the coalesced `MGET`s (one key
more, at most every 10 ms while lookups ask for it; its own write makes it read again). A
value last read longer ago than the caller allows counts as unknown, and so does a missing
key (a Redis restarted empty, an eviction): answers are then built. A document that leaves
Redis by its TTL or an eviction does not change it: an answer read before that may be sent
again (it was true of the invoice, and is bounded by the caller, `verify.lookup.reuse`).

Every Redis operation is bounded by `op_timeout` (0.3 s; aiocache's default is 5 s), so a
coalesced read waits at most two of them (the batch in flight when it queued, and its own),
and a failure of any kind raises `ReplicaUnavailable`: the caller decides (answer `unconfirmed`,
open a breaker). Nothing here calls `clear()`: on a namespaced cache it would `FLUSHDB`
(aiocache#580) or run `KEYS`. Writes are last-write-wins: whoever puts has just committed to
or read from the primary, and the reconciler re-puts from the primary after an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache  # type: ignore[import-untyped]
from redis.exceptions import RedisError

from fallback.redis_trips import RoundTrips
from fallback.replica_docs import Doc, InvoiceReads, ReplicaHit, replica_doc
from indexer.model import Invoice

NAMESPACE = "inv:v1"
DEFAULT_TIMEOUT_S = 0.3
DEFAULT_TTL_S = 90 * 24 * 3600
DEFAULT_MAX_DOCS = 100_000
#: How old a Redis replica's generation may be before a lookup asking for it has it read
#: again (one key more in the next coalesced `MGET`).
GENERATION_REFRESH_S = 0.01
_GENERATION_KEY = "generation"

log = logging.getLogger("fallback.replica")


class ReplicaUnavailable(Exception):
    """The replica could not answer within its timeout, or refused the connection."""


class Replica(Protocol):
    backend: str

    @property
    def trips(self) -> RoundTrips | None:
        """The round trips its reads share, which the rate limiter may join (`verify.app`);
        None when it makes none (in memory)."""

    @property
    def warm_up_docs(self) -> int:
        """How many documents to copy from the primary at a service's start: 0 for a
        replica that keeps its copies across restarts (Redis)."""


    async def ping(self) -> None:
        """Raise `ReplicaUnavailable` if the replica cannot answer now."""

    def seen_generation(self, max_age: float) -> object | None:
        """A value that changes whenever any process's write changes what the replica holds,
        as last seen at most `max_age` seconds ago; None when it is not known that recently
        (or not at all). Compared only with a value of this replica's (`==`)."""

    async def get(self, doc_id: str) -> Doc | None: ...

    async def get_by_authority_code(self, code: str) -> Doc | None: ...

    async def get_invoice(self, doc_id: str) -> ReplicaHit | None:
        """The invoice as the replica holds it, with when its copy was written; None when it
        holds none, or only a document this release cannot read (a stale shape: logged, and
        a miss). Raises `ReplicaUnavailable`."""

    async def get_invoice_by_code(self, code: str) -> ReplicaHit | None:
        """The invoice holding authority code `code`, as `get_invoice`."""

    async def put_many(self, docs: Iterable[Doc]) -> None:
        """Store (or replace) each flat document and its authority-code entry."""

    async def delete_many(self, doc_ids: Sequence[str]) -> None:
        """Remove documents (and their authority-code entries): invoices the primary does
        not hold after all (queued during an outage, refused when applied)."""


def _doc_key(doc_id: str) -> str:
    return f"doc:{doc_id}"


def _code_key(code: str) -> str:
    return f"code:{code}"


def _entries(docs: Iterable[Doc]) -> Iterator[tuple[str, Any]]:
    for doc in docs:
        yield _doc_key(doc["doc_id"]), doc
        if doc.get("authority_code"):
            yield _code_key(doc["authority_code"]), doc


class OrjsonSerializer:
    """aiocache serializer (duck-typed): JSON via orjson; `encoding=None` hands `loads` the
    raw bytes, skipping a decode to `str` that orjson does not need."""

    encoding = None

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(self, value: bytes | None) -> Any:
        return None if value is None else orjson.loads(value)


class MemoryReplica(InvoiceReads):
    backend = "memory"
    trips = None

    def __init__(self, max_docs: int = DEFAULT_MAX_DOCS) -> None:
        if max_docs < 1:
            raise ValueError("max_docs must be at least 1")
        super().__init__()
        self.max_docs = max_docs
        self._docs: OrderedDict[str, bytes] = OrderedDict()
        self._codes: dict[str, str] = {}
        self._generation = 0  # its writes: nobody else writes it

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def warm_up_docs(self) -> int:
        """It starts empty: as many as it holds."""
        return self.max_docs

    async def ping(self) -> None:
        return None

    def seen_generation(self, max_age: float) -> object | None:
        return self._generation

    async def get(self, doc_id: str) -> Doc | None:
        encoded = self._docs.get(doc_id)
        if encoded is None:
            return None
        self._docs.move_to_end(doc_id)
        return cast(Doc, orjson.loads(encoded))

    async def get_by_authority_code(self, code: str) -> Doc | None:
        doc_id = self._codes.get(code)
        return None if doc_id is None else await self.get(doc_id)

    async def put_many(self, docs: Iterable[Doc]) -> None:
        self._generation += 1
        for doc in docs:
            doc_id = doc["doc_id"]
            self._docs[doc_id] = orjson.dumps(doc)
            self._docs.move_to_end(doc_id)
            if doc.get("authority_code"):
                self._codes[doc["authority_code"]] = doc_id
        while len(self._docs) > self.max_docs:
            evicted_id, encoded = self._docs.popitem(last=False)
            self._drop_code(evicted_id, encoded)

    async def delete_many(self, doc_ids: Sequence[str]) -> None:
        self._generation += 1
        for doc_id in doc_ids:
            encoded = self._docs.pop(doc_id, None)
            if encoded is not None:
                self._drop_code(doc_id, encoded)

    def _drop_code(self, doc_id: str, encoded: bytes) -> None:
        code = orjson.loads(encoded).get("authority_code")
        if code and self._codes.get(code) == doc_id:
            del self._codes[code]


_FAILURES = (TimeoutError, RedisError, OSError)  # asyncio's timeout is TimeoutError


@contextmanager
def _unavailable_on_failure(what: str) -> Iterator[None]:
    try:
        yield
    except _FAILURES as exc:
        raise ReplicaUnavailable(f"redis {what}: {exc!r}") from exc


def _doc_id_of(entry: Any) -> str | None:
    """What a code entry points at: its document (current) or a doc id (written earlier)."""
    if isinstance(entry, dict):
        return cast(str | None, entry.get("doc_id"))
    return entry if isinstance(entry, str) else None


class _Reads:
    """The replica's lane of the shared round trips: one `MGET` of aiocache's keys per
    batch, each value decoded with the cache's serializer."""

    def __init__(self, cache: Any) -> None:
        self._build_key = cache.build_key
        self._loads = cache.serializer.loads

    def queue(self, pipe: Any, keys: Sequence[str]) -> None:
        build = self._build_key
        pipe.mget([build(key) for key in keys])

    def parse(self, reply: Any, keys: Sequence[str]) -> list[Any]:
        loads = self._loads
        return [loads(value) for value in reply]


class RedisReplica(InvoiceReads):
    """`trips`: the round trips this replica's reads share (with the rate limiter in the
    service, `verify.app`); by default its own, on aiocache's client, owned and closed here."""

    backend = "redis"
    warm_up_docs = 0  # Redis keeps its copies across restarts

    def __init__(self, cache: Any, ttl: int, op_timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__()
        self._cache = cache
        self.ttl = ttl
        self.op_timeout = op_timeout
        self.trips = RoundTrips(cache.client, timeout=op_timeout)
        self._reads = _Reads(cache)
        #: The generation as last read, and when that read was sent (`time.monotonic`).
        self._generation: tuple[object | None, float] = (None, -math.inf)
        self._generation_read: asyncio.Task[None] | None = None
        self._closed = False

    async def _read(self, key: str) -> Any:
        return await self.trips.call(self._reads, key)

    @property
    def namespace(self) -> str:
        return cast(str, self._cache.namespace)

    async def ping(self) -> None:
        with _unavailable_on_failure("ping"):
            await self._cache.raw("ping")

    def seen_generation(self, max_age: float) -> object | None:
        """As last read; a read is started (not waited for) when that was
        `GENERATION_REFRESH_S` ago, so under load the value is a round trip old. Outside
        an event loop, or once closed, no read is started."""
        value, sent = self._generation
        now = time.monotonic()
        if (now - sent >= GENERATION_REFRESH_S and self._generation_read is None
                and not self._closed):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                self._generation_read = loop.create_task(self._read_generation(now),
                                                         name="replica-generation")
        return value if now - sent < max_age else None

    async def _read_generation(self, sent: float) -> None:
        try:
            value = await self._read(_GENERATION_KEY)
        except (*_FAILURES, ValueError):  # unknown (or not ours): no answer sent again on it
            value = None
        finally:
            self._generation_read = None
        self._generation = (value, sent)

    async def _write(self, what: str, queue: Callable[[Any, Callable[[str], str]], None]) -> None:
        """One `MULTI`: what `queue` puts in it (with aiocache's keys), then the replica's new
        generation, so every process's answers read before it are built again; both or
        neither, bounded by `op_timeout`. This process reads the generation again next."""
        build = self._cache.build_key
        with _unavailable_on_failure(what):
            async with asyncio.timeout(self.op_timeout), \
                    self._cache.client.pipeline(transaction=True) as pipe:
                queue(pipe, build)
                pipe.set(build(_GENERATION_KEY), orjson.dumps(secrets.token_hex(8)),
                         ex=self.ttl)
                await pipe.execute()
        self._generation = (None, -math.inf)

    async def get(self, doc_id: str) -> Doc | None:
        # Not `_unavailable_on_failure`: this is the request path, and a generator-based
        # context manager per read costs more than the read's share of its round trip.
        try:
            return cast(Doc | None, await self._read(_doc_key(doc_id)))
        except _FAILURES as exc:
            raise ReplicaUnavailable(f"redis get: {exc!r}") from exc

    async def get_by_authority_code(self, code: str) -> Doc | None:
        try:
            entry = await self._read(_code_key(code))
            if entry is None or isinstance(entry, dict):
                return cast(Doc | None, entry)
            doc_id = _doc_id_of(entry)  # an entry of the earlier shape: follow it
            return None if doc_id is None else cast(Doc | None,
                                                    await self._read(_doc_key(doc_id)))
        except _FAILURES as exc:
            raise ReplicaUnavailable(f"redis get_by_authority_code: {exc!r}") from exc

    async def close(self) -> None:
        self._closed = True
        if self._generation_read is not None:
            self._generation_read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._generation_read
        await self.trips.aclose()

    async def put_many(self, docs: Iterable[Doc]) -> None:
        pairs = list(_entries(docs))
        if not pairs:
            return
        dumps = self._cache.serializer.dumps

        def queue(pipe: Any, build: Callable[[str], str]) -> None:
            flat = [part for key, doc in pairs for part in (build(key), dumps(doc))]
            pipe.execute_command("MSET", *flat)
            for key, _ in pairs:
                pipe.expire(build(key), self.ttl)

        await self._write("put_many", queue)

    async def delete_many(self, doc_ids: Sequence[str]) -> None:
        """The documents and the code entries pointing at them (read first: the code is
        in the document)."""
        doomed: list[str] = []
        with _unavailable_on_failure("delete_many"):
            for doc_id in doc_ids:
                doc = await self._cache.get(_doc_key(doc_id))
                if doc is None:
                    continue
                code = doc.get("authority_code")
                if code and _doc_id_of(await self._cache.get(_code_key(code))) == doc_id:
                    doomed.append(_code_key(code))
                doomed.append(_doc_key(doc_id))
        if doomed:
            await self._write("delete_many", lambda pipe, build: pipe.delete(
                *[build(key) for key in doomed]))


def _cache_from_url(url: str, namespace: str, timeout: float, ttl: int) -> Any:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ValueError(f"not a redis:// or rediss:// URL: {url!r}")
    db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database in a Redis URL is a number, not {db!r}")
    return RedisCache(
        endpoint=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=int(db),
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss", namespace=namespace, serializer=OrjsonSerializer(),
        timeout=timeout, ttl=ttl, create_connection_timeout=timeout, pool_max_size=32)


@asynccontextmanager
async def open_redis_replica(url: str, *, namespace: str = NAMESPACE,
                             op_timeout: float = DEFAULT_TIMEOUT_S,
                             ttl: int = DEFAULT_TTL_S) -> AsyncIterator[RedisReplica]:
    """A replica on the Redis at `url` (`redis://[:password@]host[:port][/db]`). Connects
    lazily: opening never fails because Redis is down; the first operation says so.
    `op_timeout` bounds every operation, connecting included."""
    cache = _cache_from_url(url, namespace, op_timeout, ttl)
    replica = RedisReplica(cache, ttl, op_timeout)
    try:
        yield replica
    finally:
        await replica.close()
        # Not `cache.close()`: aiocache 0.12 calls redis-py's deprecated `close()` there.
        # The client owns its pool (`auto_close_connection_pool`), so this closes both.
        await cache.client.aclose()



class WriteThrough:
    """The intake's after-commit hook: every created or changed invoice goes to the replica.
    A replica that cannot take it is logged and counted (`failures`), never an intake
    failure: the primary holds the truth and the reconciler refills the replica."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.failures = 0

    async def __call__(self, invoices: Sequence[Invoice]) -> None:
        try:
            await self.replica.put_many(replica_doc(invoice) for invoice in invoices)
        except ReplicaUnavailable:
            self.failures += 1
            log.warning("replica write-through failed; the reconciler will refill it",
                        extra={"invoices": len(invoices), "failures": self.failures})
