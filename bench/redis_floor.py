"""The floor of the replica path, for `bench.lookup --replica`: the bare handler
(`bench.bare_server`) plus one Redis round trip per request, a GET of one of the replica's
stored documents through redis-py's asyncio client (the client the service's replica and
rate limits use), then the same constant answer. No middlewares, no keys, no decoding: what
aiohttp, the client and Redis cost for the one round trip a replica lookup cannot do
without (the service puts its read and its rate-limit takes in that one round trip,
`fallback.redis_trips`). The keys rotate over the namespace's documents (`...doc:<id>`), found by
one SCAN at start.

Run: `python -m bench.redis_floor --port 8083 --redis-url redis://127.0.0.1:6379/0
--namespace bench:...`.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from redis.asyncio import Redis

from bench.bare_server import ANSWER, LOOKUP_PATH

CLIENT = web.AppKey("redis", Redis)


def create_app(redis_url: str, namespace: str) -> web.Application:
    app = web.Application()
    rotation: list[Iterator[bytes]] = []

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        client = Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{namespace}*doc:*", count=1000)]
        if not keys:
            raise SystemExit(f"no keys under {namespace!r} in {redis_url}")
        rotation.append(itertools.cycle(sorted(keys)))
        app[CLIENT] = client
        yield
        await client.aclose()

    async def lookup(request: web.Request) -> web.Response:
        await request.app[CLIENT].get(next(rotation[0]))
        return web.json_response(ANSWER)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_routes([web.get(LOOKUP_PATH, lookup), web.get("/healthz", healthz)])
    app.cleanup_ctx.append(redis_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True, help="the replica's key prefix")
    args = parser.parse_args()
    web.run_app(create_app(args.redis_url, args.namespace), host="127.0.0.1", port=args.port,
                access_log=None, print=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
