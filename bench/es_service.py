"""The real service on Elasticsearch, for `bench.lookup --es`: loads the same demo data into
the index (once per index prefix), then serves `create_app` on the given port.

Elasticsearch is the cluster at --es-url. When that is osmem-server (the in-memory stand-in
the tests use), the clients go through the test adapter that sends plain application/json,
as the test suite does; the product itself is unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from bench.es_counting import factory_from_env, keep_writing
from indexer.intake import Intake
from indexer.package import package_from_json
from indexer.store.elasticsearch import ClientFactory, default_client, open_elasticsearch_store
from tests.indexer.store.plain_json import plain_json_client
from verify.app import create_app
from verify.demo import build_demo
from verify.settings import Settings


async def load(settings: Settings, factory: ClientFactory, per_series: int) -> int:
    assert settings.es_url is not None
    async with open_elasticsearch_store(settings.es_url, index_prefix=settings.es_index_prefix,
                                        client_factory=factory) as store:
        if await store.count_invoices():
            return 0
        intake = Intake(store, settings.rules)
        loaded = 0
        for raw in build_demo(per_series=per_series).packages:
            result = await intake.ingest(package_from_json(raw, max_items=10**6))
            loaded += result.notice["accepted"]
        return loaded


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.es_service")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--per-series", type=int, default=2500)
    parser.add_argument("--data-dir", required=True, help="for the access database (keys)")
    parser.add_argument("--real-es", action="store_true", help="a real cluster, not osmem")
    args = parser.parse_args()
    settings = Settings.from_env({**os.environ, "INVOICE_ES_URL": args.es_url,
                                  "INVOICE_ES_INDEX_PREFIX": args.prefix,
                                  "INVOICE_DATA_DIR": args.data_dir})
    factory: ClientFactory = default_client if args.real_es else plain_json_client
    asyncio.run(load(settings, factory, args.per_series))
    counts = None
    if not args.real_es:  # BENCH_ES_COUNTS: the requests to the cluster counted by endpoint
        factory, counts = factory_from_env(factory)
    app = create_app(settings, es_client_factory=factory)
    if counts is not None:
        app.cleanup_ctx.append(count_requests(counts))
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


def count_requests(path: Path) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(keep_writing(path))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return ctx


if __name__ == "__main__":
    main()
