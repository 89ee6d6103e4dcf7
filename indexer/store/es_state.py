"""The deployment's shared state on Elasticsearch: API keys, the audit trail, outage windows,
the gap ledger, and the watches and their events, one alias each under the store's prefix
(docs/deployment.md#many-processes).

Every process keeps its own local copy or buffer of each (SQLite files in its data
directory) and meets the others here; what goes where, and how each survives the cluster
being down, is the business of the modules that sync them (`verify.access.shared_keys`,
`verify.access.shared_audit`, `fallback.shared_outages`, `fallback.shared_gaps`). This module
only knows the layout and the few operations they need, each one of Elasticsearch's own
guarantees:

- `create`: `op_type=create`, so exactly one writer creates a document id (a claim);
- `replace_if` / `delete_if`: `if_seq_no` + `if_primary_term`, so a read-modify-write
  loses to any write made since its read (409) instead of overwriting it;
- `put_versioned`: an external version, so an older state never overwrites a newer one;
- realtime GET and mget by id; searches (which see refreshed documents only) page with
  `search_after`.

Transport failures, 429/5xx and a missing index are `ElasticsearchUnavailable`
(`es_support`), which every caller treats as "the cluster is down: work locally".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from indexer.store.es_bulk import BulkOutcome, BulkWriteError, run_bulk
from indexer.store.es_mappings import LayoutStep
from indexer.store.es_support import (
    MGET_CHUNK,
    AliasedStore,
    ClientFactory,
    doc_missing,
    open_aliased_store,
    unavailable_on_failure,
)

_KEYWORD: dict[str, Any] = {"type": "keyword"}
_STORED: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}
_NUMBER: dict[str, Any] = {"type": "double"}
_COUNT: dict[str, Any] = {"type": "long"}
_OPAQUE: dict[str, Any] = {"type": "object", "enabled": False}

KEY_PROPERTIES: dict[str, Any] = {
    "key_id": _KEYWORD,
    "secret_hash": _STORED,
    "role": _KEYWORD,
    "scopes": _KEYWORD,
    "name": _STORED,
    "created_at": _STORED,
    "created_by": _KEYWORD,
    "revoked_at": _STORED,
    "updated_ts": _NUMBER,
}
#: The audit trail is shipped in packs (`verify.access.shared_audit`): one document holds up
#: to a few hundred entries of one process, which the searches find by what they filter on
#: (the distinct key ids, actions and targets of its entries, and its span of time) and
#: which the reader unpacks. A document per entry cost osmem-server 0.4-1.3 ms each (no
#: read answered meanwhile), as much as a lookup; a pack of 500 costs it 15-65 ms.
AUDIT_PROPERTIES: dict[str, Any] = {
    "uid": _KEYWORD,
    "node": _KEYWORD,
    "first_ts": _NUMBER,
    "last_ts": _NUMBER,
    "count": _COUNT,
    "key_id": _KEYWORD,
    "action": _KEYWORD,
    "target": _KEYWORD,
    "entries": _OPAQUE,
}
OUTAGE_PROPERTIES: dict[str, Any] = {
    "id": _COUNT,
    "origin": _KEYWORD,
    "system": _KEYWORD,
    "kind": _KEYWORD,
    "start_ts": _NUMBER,
    "end_ts": _NUMBER,
    "reason": _STORED,
    "declared_by": _KEYWORD,
    "created_at": _STORED,
    "updated_ts": _NUMBER,
}
GAP_PROPERTIES: dict[str, Any] = {
    "id": _KEYWORD,
    "ids": _KEYWORD,
    "lookup_key": _KEYWORD,
    "scheme": _KEYWORD,
    "seller_tax_id": _KEYWORD,
    "issued_on": _STORED,
    "reason": _KEYWORD,
    "outage_id": _COUNT,
    "status": _KEYWORD,
    "first_seen": _NUMBER,
    "last_seen": _NUMBER,
    "count": _COUNT,
    "resolved_at": _NUMBER,
    "resolution": _KEYWORD,
    "requester_ids": _KEYWORD,
    "due_at": _NUMBER,
    "key": _OPAQUE,
    "answer": _OPAQUE,
    "requesters": _OPAQUE,
    "sources": _OPAQUE,
    "updated_ts": _NUMBER,
}

#: Watches and their events (`verify.watches.es_store`): the ids are what makes a watch
#: one per (key id, key) and an event one per change.
WATCH_PROPERTIES: dict[str, Any] = {
    "id": _KEYWORD,
    "key_id": _KEYWORD,
    "key": _KEYWORD,
    "created_at": _NUMBER,
    "expires_at": _NUMBER,
    "callback_url": _STORED,
}
WATCH_EVENT_PROPERTIES: dict[str, Any] = {
    "seq": _COUNT,
    "id": _KEYWORD,
    "watch_id": _KEYWORD,
    "key_id": _KEYWORD,
    "key": _KEYWORD,
    "kind": _KEYWORD,
    "invoice_id": _KEYWORD,
    "status": _KEYWORD,
    "at": _NUMBER,
    "details": _OPAQUE,
    "callback_url": _KEYWORD,
    "attempts": _COUNT,
    "next_at": _NUMBER,
    "claimed_by": _KEYWORD,
    "claimed_until": _NUMBER,
    "sent_at": _NUMBER,
    "error": _STORED,
}


@dataclass(frozen=True, slots=True)
class StateLayout:
    """The aliases of the shared state under one prefix (the invoice store's)."""

    prefix: str = "invoices"

    @property
    def keys(self) -> str:
        return f"{self.prefix}-keys"

    @property
    def audit(self) -> str:
        # Not `-audit`: that alias held a document per entry before the packs, and its
        # template's pattern (`<prefix>-audit-*`) would match an `-audit-...` name too.
        return f"{self.prefix}-auditpacks"

    @property
    def outages(self) -> str:
        return f"{self.prefix}-outages"

    @property
    def gaps(self) -> str:
        return f"{self.prefix}-gaps"

    @property
    def watches(self) -> str:
        return f"{self.prefix}-watches"

    @property
    def watch_events(self) -> str:
        return f"{self.prefix}-watchevents"

    def templates(self) -> dict[str, dict[str, Any]]:
        return {
            self.keys: KEY_PROPERTIES,
            self.audit: AUDIT_PROPERTIES,
            self.outages: OUTAGE_PROPERTIES,
            self.gaps: GAP_PROPERTIES,
            self.watches: WATCH_PROPERTIES,
            self.watch_events: WATCH_EVENT_PROPERTIES,
        }

    def steps(self) -> dict[str, Sequence[LayoutStep]]:
        return {}  # the first release's layout


@dataclass(frozen=True, slots=True)
class Versioned:
    """A document as read, with what a conditional write of it needs."""

    id: str
    source: dict[str, Any]
    seq_no: int
    primary_term: int


def _versioned(hit: Mapping[str, Any]) -> Versioned:
    return Versioned(
        str(hit["_id"]),
        cast(dict[str, Any], hit["_source"]),
        int(hit["_seq_no"]),
        int(hit["_primary_term"]),
    )


class SharedStateStore(AliasedStore):
    """The operations of the shared state; reads and single writes on the fail-fast client
    (background sync must not hang on a slow cluster), bulk writes on the patient one."""

    layout: StateLayout

    def __init__(
        self, fast: AsyncElasticsearch, patient: AsyncElasticsearch, layout: StateLayout
    ) -> None:
        super().__init__(fast, patient, layout)

    async def _ready(self) -> None:
        await self.ensure_layout(self.fast)

    async def get(self, alias: str, doc_id: str) -> Versioned | None:
        await self._ready()
        with unavailable_on_failure(f"get {alias}"):
            try:
                resp = await self.fast.get(index=alias, id=doc_id)
            except NotFoundError as exc:
                if doc_missing(exc):
                    return None
                raise
        return _versioned(resp.body)

    async def mget(self, alias: str, ids: Iterable[str]) -> dict[str, Versioned]:
        await self._ready()
        wanted = sorted(set(ids))
        found: dict[str, Versioned] = {}
        with unavailable_on_failure(f"mget {alias}"):
            for start in range(0, len(wanted), MGET_CHUNK):
                resp = await self.fast.mget(index=alias, ids=wanted[start : start + MGET_CHUNK])
                for doc in resp["docs"]:
                    if doc.get("found"):
                        found[str(doc["_id"])] = _versioned(doc)
        return found

    async def create(self, alias: str, doc_id: str, source: dict[str, Any]) -> bool:
        """Create the document unless its id exists: False when it does (someone else's)."""
        await self._ready()
        with unavailable_on_failure(f"create {alias}"):
            try:
                await self.fast.index(index=alias, id=doc_id, document=source, op_type="create")
            except ConflictError:
                return False
        return True

    async def replace_if(self, alias: str, read: Versioned, source: dict[str, Any]) -> bool:
        """Write `source` over the document as it was `read`; False if it changed since (or
        was deleted): read it again and decide again."""
        await self._ready()
        with unavailable_on_failure(f"replace {alias}"):
            try:
                await self.fast.index(
                    index=alias,
                    id=read.id,
                    document=source,
                    if_seq_no=read.seq_no,
                    if_primary_term=read.primary_term,
                )
            except (ConflictError, NotFoundError):
                return False
        return True

    async def delete_if(self, alias: str, read: Versioned) -> bool:
        """Delete the document as it was `read`; False if it changed or went meanwhile."""
        await self._ready()
        with unavailable_on_failure(f"delete {alias}"):
            try:
                await self.fast.delete(
                    index=alias,
                    id=read.id,
                    if_seq_no=read.seq_no,
                    if_primary_term=read.primary_term,
                )
            except (ConflictError, NotFoundError):
                return False
        return True

    async def put_versioned(
        self, alias: str, doc_id: str, source: dict[str, Any], version: int
    ) -> bool:
        """Index `source` at an external `version`: False when a version as new is there."""
        await self._ready()
        with unavailable_on_failure(f"put {alias}"):
            try:
                await self.fast.index(
                    index=alias,
                    id=doc_id,
                    document=source,
                    version=version,
                    version_type="external",
                )
            except ConflictError:
                return False
        return True

    async def put_many_versioned(
        self, alias: str, docs: Sequence[tuple[str, dict[str, Any], int]]
    ) -> None:
        """Index each (id, source, external version) in one bulk; a document whose stored
        version is as new already is left as it is (its 409 is not a failure)."""
        if not docs:
            return
        await self._ready()
        actions: list[dict[str, Any]] = [
            {
                "_op_type": "index",
                "_index": alias,
                "_id": doc_id,
                "version": version,
                "version_type": "external",
                "_source": source,
            }
            for doc_id, source, version in docs
        ]
        outcome = BulkOutcome()
        with unavailable_on_failure(f"bulk {alias}"):
            await run_bulk(self.patient, actions, outcome, ignore_status=(409,))
        if outcome.failed:
            raise BulkWriteError(outcome.failed)

    async def search(
        self,
        alias: str,
        query: dict[str, Any],
        sort: list[dict[str, Any]],
        *,
        size: int,
        after: list[Any] | None = None,
    ) -> tuple[list[Versioned], list[Any] | None]:
        """One page of matching documents in `sort` order (which must end with a unique
        field), after the sort values `after` of the page before; and the sort values of
        this page's last hit (None for an empty page)."""
        await self._ready()
        with unavailable_on_failure(f"search {alias}"):
            resp = await self.fast.search(
                index=alias,
                query=query,
                sort=sort,
                size=size,
                search_after=after,
                seq_no_primary_term=True,
            )
        hits = resp["hits"]["hits"]
        return [_versioned(hit) for hit in hits], (list(hits[-1]["sort"]) if hits else None)

    async def scan(
        self, alias: str, query: dict[str, Any], sort: list[dict[str, Any]], *, page: int = 1000
    ) -> AsyncIterator[Versioned]:
        """Every matching document, a page at a time."""
        after: list[Any] | None = None
        while True:
            hits, after = await self.search(alias, query, sort, size=page, after=after)
            for hit in hits:
                yield hit
            if len(hits) < page:
                return

    async def count(self, alias: str, query: dict[str, Any]) -> int:
        await self._ready()
        with unavailable_on_failure(f"count {alias}"):
            resp = await self.fast.count(index=alias, query=query)
        return int(resp["count"])

    async def refresh(self, alias: str) -> None:
        """Make what was written searchable now (searches see refreshed documents only)."""
        await self._ready()
        with unavailable_on_failure(f"refresh {alias}"):
            await self.fast.indices.refresh(index=alias)

    async def delete_matching(self, alias: str, query: dict[str, Any]) -> int:
        await self._ready()
        with unavailable_on_failure(f"delete_by_query {alias}"):
            resp = await self.patient.delete_by_query(index=alias, query=query, conflicts="proceed")
        return int(resp.get("deleted", 0))


@asynccontextmanager
async def open_shared_state(
    url: str,
    *,
    index_prefix: str = "invoices",
    client_factory: ClientFactory | None = None,
    startup_timeout: float = 10.0,
) -> AsyncIterator[SharedStateStore]:
    """Like the other stores: opens even if the cluster does not answer yet."""
    layout = StateLayout(index_prefix)
    async with open_aliased_store(
        url,
        lambda fast, patient: SharedStateStore(fast, patient, layout),
        client_factory=client_factory,
        startup_timeout=startup_timeout,
    ) as store:
        yield store
