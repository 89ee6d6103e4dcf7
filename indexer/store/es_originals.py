"""Original documents on Elasticsearch: the XML every process accepted, served by any.

One index behind the alias `<prefix>-originals`. The `_id` is derived from the pair the
protocol keys by, (doc id, package id): the SHA-256 of the pair as a JSON list, so no
separator can make two pairs collide and any pair fits Elasticsearch's 512-byte id limit.
The pair is stored beside the body and checked on read. The body is a `binary` field
(base64 in `_source`, neither indexed nor given doc values): it is only ever read back
whole by a realtime GET.

`put_many` creates (`op_type=create`): re-putting a pair keeps the first body, as SQLite's
`INSERT OR IGNORE`; the 409 of a pair already kept is not an error, any other refused item
is raised as `BulkWriteError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from indexer.store.es_bulk import BulkOutcome, BulkWriteError, run_bulk
from indexer.store.es_mappings import LayoutStep
from indexer.store.es_support import (
    AliasedStore,
    ClientFactory,
    open_aliased_store,
    unavailable_on_failure,
)

MEDIA_TYPE = "application/xml"

ORIGINAL_PROPERTIES: dict[str, Any] = {
    "doc_id": {"type": "keyword"}, "package_id": {"type": "keyword"},
    "media_type": {"type": "keyword", "index": False},
    "body": {"type": "binary"},
}


@dataclass(frozen=True, slots=True)
class OriginalsLayout:
    prefix: str = "invoices"

    @property
    def originals(self) -> str:
        return f"{self.prefix}-originals"

    def templates(self) -> dict[str, dict[str, Any]]:
        return {self.originals: ORIGINAL_PROPERTIES}

    def steps(self) -> dict[str, Sequence[LayoutStep]]:
        return {}  # the first release's layout


def original_id(doc_id: str, package_id: str) -> str:
    pair = json.dumps([doc_id, package_id], ensure_ascii=True)
    return hashlib.sha256(pair.encode()).hexdigest()


class ElasticsearchOriginals(AliasedStore):
    layout: OriginalsLayout

    def __init__(self, fast: AsyncElasticsearch, patient: AsyncElasticsearch,
                 layout: OriginalsLayout) -> None:
        super().__init__(fast, patient, layout)

    async def put_many(self, originals: Iterable[tuple[str, str, bytes]]) -> None:
        """(doc id, package id, XML bytes); re-putting the same pair keeps the first."""
        actions: list[dict[str, Any]] = [
            {"_op_type": "create", "_index": self.layout.originals,
             "_id": original_id(doc_id, package_id),
             "_source": {"doc_id": doc_id, "package_id": package_id, "media_type": MEDIA_TYPE,
                         "body": base64.b64encode(body).decode("ascii")}}
            for doc_id, package_id, body in originals]
        if not actions:
            return
        await self.ensure_layout()
        outcome = BulkOutcome()
        with unavailable_on_failure("put originals"):
            await run_bulk(self.patient, actions, outcome, ignore_status=(409,))
        if outcome.failed:
            raise BulkWriteError(outcome.failed)

    async def get(self, doc_id: str, package_id: str) -> bytes | None:
        await self.ensure_layout(self.fast)
        with unavailable_on_failure("get original"):
            source = await self.get_source(self.layout.originals,
                                           original_id(doc_id, package_id))
        if source is None or (source["doc_id"], source["package_id"]) != (doc_id, package_id):
            return None
        return base64.b64decode(source["body"])


@asynccontextmanager
async def open_elasticsearch_originals(
        url: str, *, index_prefix: str = "invoices", client_factory: ClientFactory | None = None,
        startup_timeout: float = 10.0) -> AsyncIterator[ElasticsearchOriginals]:
    """Like `open_elasticsearch_store`: opens even if the cluster does not answer yet."""
    layout = OriginalsLayout(index_prefix)
    async with open_aliased_store(
            url, lambda fast, patient: ElasticsearchOriginals(fast, patient, layout),
            client_factory=client_factory, startup_timeout=startup_timeout) as originals:
        yield originals
