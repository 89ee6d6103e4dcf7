"""What the three stores on Elasticsearch (invoices, registry, originals) share: the base
class `AliasedStore` and its opening, `open_aliased_store`.

The same two clients (`REQUEST_PATH` for reads, `PATIENT` for writes and maintenance, built
by the same `ClientFactory`), the same `ElasticsearchUnavailable` for transport failures,
429/5xx and a missing index, and the same start: the layout (templates, first indices,
aliases) is created at open for at most `startup_timeout`; a cluster that does not answer
by then is logged and the store opens anyway, creating its layout on first use. Then the
layout's steps an existing index has not been through run (`es_mappings.migrate_layout`):
not bounded by the startup timeout, as a SQLite file's migration is not, since a store
reads its documents in the layout of its code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from indexer.coalesce import Coalescer
from indexer.store.es_mappings import Layout, create_layout, migrate_layout, storable_id
from indexer.store.protocol import StoreUnavailableError

logger = logging.getLogger(__name__)

#: mget at most this many ids per request.
MGET_CHUNK = 1000
#: An mget of at most this many ids on the fast client goes through the coalesced reads.
COALESCED_MGET = 8


class ElasticsearchUnavailable(StoreUnavailableError):
    """The cluster did not answer (connection refused, timeout) or answered 429/5xx."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    request_timeout: float
    max_retries: int
    retry_on_timeout: bool


REQUEST_PATH = ClientOptions(request_timeout=1.0, max_retries=1, retry_on_timeout=False)
#: A coalesced read batch fails after this long, and every read queued behind it (the
#: fast client's own timeout with its one retry fits in it).
READ_BATCH_TIMEOUT = 2 * REQUEST_PATH.request_timeout + 0.5
PATIENT = ClientOptions(request_timeout=30.0, max_retries=3, retry_on_timeout=False)

ClientFactory = Callable[[str, ClientOptions], AsyncElasticsearch]


def default_client(url: str, options: ClientOptions) -> AsyncElasticsearch:
    return AsyncElasticsearch(url, request_timeout=options.request_timeout,
                              max_retries=options.max_retries,
                              retry_on_timeout=options.retry_on_timeout)


@contextmanager
def unavailable_on_failure(what: str) -> Iterator[None]:
    """Transport failures, 429/5xx and a missing index as `ElasticsearchUnavailable`."""
    try:
        yield
    except TransportError as exc:
        raise ElasticsearchUnavailable(f"{what}: {exc}") from exc
    except ApiError as exc:
        if (exc.status_code == 429 or exc.status_code >= 500
                or exc.error == "index_not_found_exception"):
            raise ElasticsearchUnavailable(f"{what}: {exc}") from exc
        raise


def doc_missing(exc: NotFoundError) -> bool:
    """A 404 for a missing document (as opposed to a missing index)."""
    return isinstance(exc.body, dict) and exc.body.get("found") is False


class AliasedStore:
    """Two clients and a layout created once; the realtime reads by `_id` every store uses."""

    def __init__(self, fast: AsyncElasticsearch, patient: AsyncElasticsearch,
                 layout: Layout) -> None:
        self.fast = fast
        self.patient = patient
        self.layout = layout
        self.indices_ready = False
        self.layout_ready = False
        self._readers: dict[str, Coalescer[str, dict[str, Any] | None]] = {}

    async def create_indices(self, client: AsyncElasticsearch | None = None) -> None:
        """Create whatever templates, indices and aliases are missing, once per store."""
        if self.indices_ready:
            return
        with unavailable_on_failure("ensure_layout"):
            await create_layout(client or self.patient, self.layout)
        self.indices_ready = True

    async def ensure_layout(self, client: AsyncElasticsearch | None = None) -> None:
        """Create whatever of the layout is missing and run the steps its indices have not
        been through, once per store. Reads pass the fast client, so a store opened while
        the cluster was down heals on its first read."""
        if self.layout_ready:
            return
        await self.create_indices(client)
        with unavailable_on_failure("migrate_layout"):
            await migrate_layout(client or self.patient, self.layout)
        self.layout_ready = True

    async def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """Realtime read of one document on the fast client; `None` for a missing one.

        Concurrent reads of one index share a round trip: they are queued and sent as one
        realtime `_mget` (`indexer/coalesce.py`), so under load a lookup pays a share of one
        request instead of a request (the client's encoding, the connection pool, the HTTP
        round trip, the cluster's own per-request work). Alone, a read is one `_mget` of
        one id, as dear as a GET."""
        if not storable_id(doc_id):
            return None
        reader = self._readers.get(index)
        if reader is None:
            reader = self._readers[index] = Coalescer(partial(self._read_batch, index),
                                                      timeout=READ_BATCH_TIMEOUT)
        try:
            return await reader.call(doc_id)
        except TimeoutError as exc:  # the batch (or the one ahead of it) ran out of time
            raise ElasticsearchUnavailable(f"read of {index}: no answer within "
                                           f"{READ_BATCH_TIMEOUT:g} s") from exc

    async def _read_batch(self, index: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        try:
            resp = await self.fast.mget(index=index, ids=list(ids))
        except ConnectionTimeout:
            # Sent once more (a read; `READ_BATCH_TIMEOUT` bounds both): one answer slower
            # than the fast client's second, a cluster busy for a moment (a bulk holding
            # its indexing lock, a loaded host), would otherwise fail every lookup queued
            # in the batch at once, which the breaker counts as that many failures in a
            # row and opens on. A stalled cluster still fails the batch, a second later.
            resp = await self.fast.mget(index=index, ids=list(ids))
        sources: list[dict[str, Any] | None] = []
        for doc in resp["docs"]:
            if "error" in doc:  # a shard that could not answer: the batch failed
                raise ElasticsearchUnavailable(f"mget {index}: {doc['error']}")
            sources.append(cast(dict[str, Any], doc["_source"]) if doc.get("found") else None)
        return sources

    async def mget_sources(self, index: str, ids: Iterable[str],
                           client: AsyncElasticsearch | None = None,
                           ) -> dict[str, dict[str, Any]]:
        """Realtime mget, `MGET_CHUNK` ids per request, on the fast client unless `client`
        (the patient one, for batch work) is given. A few ids on the fast client (a
        lookup's seller in the registry) join the coalesced reads instead, so concurrent
        lookups share those round trips too."""
        wanted = sorted({i for i in ids if storable_id(i)})
        if client is None and len(wanted) <= COALESCED_MGET:
            sources = await asyncio.gather(*(self.get_source(index, i) for i in wanted))
            return {i: src for i, src in zip(wanted, sources, strict=True) if src is not None}
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), MGET_CHUNK):
            resp = await (client or self.fast).mget(
                index=index, ids=wanted[start:start + MGET_CHUNK])
            for doc in resp["docs"]:
                if doc.get("found"):
                    found[str(doc["_id"])] = cast(dict[str, Any], doc["_source"])
        return found


S = TypeVar("S", bound=AliasedStore)


@asynccontextmanager
async def open_aliased_store(
        url: str, build: Callable[[AsyncElasticsearch, AsyncElasticsearch], S], *,
        client_factory: ClientFactory | None, startup_timeout: float) -> AsyncIterator[S]:
    """Both clients, the layout attempted for at most `startup_timeout`, both closed after."""
    factory = client_factory or default_client
    fast = factory(url, REQUEST_PATH)
    try:
        patient = factory(url, PATIENT)
        try:
            store = build(fast, patient)
            try:
                async with asyncio.timeout(startup_timeout):
                    await store.create_indices()
                await store.ensure_layout()  # the steps: as long as they take
            except (ElasticsearchUnavailable, TimeoutError) as exc:
                logger.warning("Elasticsearch at %s did not answer at start (%s); %s opens "
                               "degraded and creates its indices when it does", url,
                               exc or type(exc).__name__, type(store).__name__)
            yield store
        finally:
            await patient.close()
    finally:
        await fast.close()
