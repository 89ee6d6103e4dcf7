"""The Elasticsearch store's reads by id coalesce: concurrent lookups share one realtime
`_mget` (indexer/store/es_support.py), each still gets its own document, a missing one is
None, and a read alone is one request. The requests are counted on the wire: a transport
node that records each request's method and path before sending it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from indexer.store.elasticsearch import ClientOptions, ElasticsearchStore, open_elasticsearch_store
from tests.indexer.store.conftest import EsTarget, drop_layout, fresh_prefix
from tests.indexer.store.plain_json import PlainJsonNode
from tests.indexer.store.test_contract import pkg, vn

SENT: list[tuple[str, str]] = []


class CountingNode(PlainJsonNode):
    async def perform_request(self, method: str, target: str, *args: object,
                              **kwargs: object) -> object:
        SENT.append((method, target.split("?", 1)[0]))
        return await super().perform_request(method, target, *args, **kwargs)  # type: ignore[arg-type]


def counting_client(url: str, options: ClientOptions) -> AsyncElasticsearch:
    return AsyncElasticsearch(url, node_class=CountingNode,
                              request_timeout=options.request_timeout,
                              max_retries=options.max_retries,
                              retry_on_timeout=options.retry_on_timeout)


@pytest.fixture
async def store(es_target: EsTarget) -> AsyncIterator[ElasticsearchStore]:
    if es_target.client_factory.__name__ != "plain_json_client":
        pytest.skip("counts requests through the osmem-server adapter's node")
    async with open_elasticsearch_store(es_target.url, index_prefix=fresh_prefix(),
                                        client_factory=counting_client) as es_store:
        try:
            yield es_store
        finally:
            await drop_layout(es_store.patient, es_store.layout)


def reads() -> list[tuple[str, str]]:
    return [(method, path) for method, path in SENT if "_mget" in path or "_doc" in path]


async def test_concurrent_reads_share_one_mget(store: ElasticsearchStore) -> None:
    await store.commit_package(pkg(), [vn(n) for n in range(1, 21)], [])
    SENT.clear()
    wanted = [vn(n).doc_id for n in range(1, 31)]  # 21-30 were never stored
    found = await asyncio.gather(*(store.get_invoice(doc_id) for doc_id in wanted))
    assert [inv.doc_id if inv else None for inv in found] == wanted[:20] + [None] * 10
    sent = reads()
    assert 1 <= len(sent) <= 2, sent  # the first alone, or with the rest; never 30
    assert all(path.endswith("/_mget") for _, path in sent), sent


async def test_a_read_alone_is_one_request(store: ElasticsearchStore) -> None:
    await store.commit_package(pkg(), [vn(1)], [])
    SENT.clear()
    invoice = await store.get_invoice(vn(1).doc_id)
    assert invoice is not None
    assert invoice.doc_id == vn(1).doc_id
    assert len(reads()) == 1
    assert await store.get_invoice(vn(2).doc_id) is None
