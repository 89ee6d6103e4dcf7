"""The floor of the Elasticsearch lookup path, for `bench.lookup --es`: a bare aiohttp
handler that does one realtime GET by id through the same Elasticsearch client the service
uses (`REQUEST_PATH` options, the same client factory, the same index), then answers a
small JSON dict. No middlewares, no keys, no verification: what aiohttp, the client and the
cluster cost for one read. The ids rotate over `--ids-file` (the demo invoices' ids and,
like the bench's URLs, about a quarter that do not exist).

Run: `python -m bench.es_floor --port 8082 --es-url URL --ids-file ids.txt [--real-es]`.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from elasticsearch import NotFoundError

from bench.bare_server import LOOKUP_PATH
from bench.es_counting import factory_from_env
from bench.es_service import count_requests
from indexer.store.elasticsearch import ClientFactory, default_client, open_elasticsearch_store
from tests.indexer.store.plain_json import plain_json_client


def create_app(es_url: str, prefix: str, ids: list[str], factory: ClientFactory,
               ) -> web.Application:
    app = web.Application()
    rotation = itertools.cycle(ids)
    opened: dict[str, Any] = {}

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_elasticsearch_store(es_url, index_prefix=prefix,
                                            client_factory=factory) as store:
            opened["client"], opened["index"] = store.fast, store.layout.invoices
            yield

    async def lookup(request: web.Request) -> web.Response:
        doc_id = next(rotation)
        try:
            resp = await opened["client"].get(index=opened["index"], id=doc_id)
        except NotFoundError:
            return web.json_response({"status": "not_found", "id": doc_id})
        return web.json_response({"status": "valid", "id": doc_id,
                                  "total": resp["_source"].get("total_amount")})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_routes([web.get(LOOKUP_PATH, lookup), web.get("/healthz", healthz)])
    app.cleanup_ctx.append(store_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--ids-file", type=Path, required=True)
    parser.add_argument("--real-es", action="store_true", help="a real cluster, not osmem")
    args = parser.parse_args()
    ids = [line for line in args.ids_file.read_text().splitlines() if line]
    factory: ClientFactory = default_client if args.real_es else plain_json_client
    counts = None
    if not args.real_es:
        factory, counts = factory_from_env(factory)
    app = create_app(args.es_url, args.prefix, ids, factory)
    if counts is not None:
        app.cleanup_ctx.append(count_requests(counts))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                shutdown_timeout=5)


if __name__ == "__main__":
    main()
