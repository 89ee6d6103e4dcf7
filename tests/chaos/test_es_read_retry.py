"""A coalesced read whose first `_mget` goes unanswered past the fast client's timeout is
sent once more (indexer/store/es_support.py): a cluster that stalls for a moment (a bulk
holding osmem-server's indexing lock, a loaded host) costs the lookups of that batch a
second, not an error each, which the breaker would count as as many failures in a row.

osmem-server is frozen with SIGSTOP (its socket stays open, nothing answers) and continued
once the read's second request has gone out, so the first one is known to have timed out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from osmem_server import OsmemServer

from indexer.store.elasticsearch import ElasticsearchUnavailable, open_elasticsearch_store
from tests.chaos.polling import poll
from tests.chaos.procs import freeze, thaw
from tests.indexer.store.plain_json import plain_json_client

pytestmark = pytest.mark.chaos


async def test_a_read_outlasting_one_timeout_is_sent_again_and_answered(
    osmem: OsmemServer,
) -> None:
    async with open_elasticsearch_store(
        osmem.url, index_prefix="retry", client_factory=plain_json_client
    ) as store:
        assert await store.get_invoice("VN-0101234567-1-C26TAA-1") is None  # layout ready
        sent: list[str] = []
        transport = store.fast.transport
        send = transport.perform_request

        async def counted(method: str, target: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(target)
            return await send(method, target, *args, **kwargs)

        transport.perform_request = counted  # type: ignore[method-assign]
        freeze(osmem.pid)
        try:
            read = asyncio.create_task(store.get_invoice("VN-0101234567-1-C26TAA-2"))
            await poll(lambda: len(sent) >= 2 or read.done(), 30, "the read sent again or failed")
        finally:
            thaw(osmem.pid)
        try:
            assert await read is None, "the second request's answer"
        except ElasticsearchUnavailable as exc:
            pytest.fail(f"the read failed after one timeout instead of asking again: {exc}")
        assert len(sent) == 2
        assert all(target.split("?")[0].endswith("/_mget") for target in sent)
