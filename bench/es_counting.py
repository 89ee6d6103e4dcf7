"""Counting the requests a bench server sends to Elasticsearch, by endpoint, for
`bench.lookup --es` (its `es requests per lookup` lines).

`counting(factory, path)` wraps a `ClientFactory`: every client it builds counts each request
it sends as `METHOD /<alias>/<endpoint>` (a document id as `{id}`, the query string left
out), and the counts of all of them are written to `path` as JSON twice a second (cumulative,
replaced atomically). The bench reads the file before and after a measured run and divides the
difference by the lookups answered. A measurement aid only: the product is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch

from indexer.store.elasticsearch import ClientFactory, ClientOptions
from tests.indexer.store.plain_json import plain_json_client

#: Where the counting servers write their counts (bench.lookup sets it per server).
ENV = "BENCH_ES_COUNTS"
COUNTS: Counter[str] = Counter()
_WRITE_EVERY_S = 0.5


def endpoint(method: str, target: str) -> str:
    """`GET /bench-invoices/_doc/AB12` -> `GET /bench-invoices/_doc/{id}`."""
    parts = target.split("?", 1)[0].split("/")
    for i in range(2, len(parts)):
        if parts[i - 1] in ("_doc", "_create", "_update"):
            parts[i] = "{id}"
    return f"{method} {'/'.join(parts)}"


def counting_client(url: str, options: ClientOptions) -> AsyncElasticsearch:
    """`plain_json_client` (osmem-server) whose requests are counted in `COUNTS`."""
    client = plain_json_client(url, options)
    transport = client.transport
    send = transport.perform_request

    async def counted(method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        COUNTS[endpoint(method, target)] += 1
        return await send(method, target, *args, **kwargs)

    transport.perform_request = counted  # type: ignore[method-assign]
    return client


def write_counts(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(COUNTS)))
    os.replace(tmp, path)


async def keep_writing(path: Path) -> None:
    """Write `COUNTS` to `path` every half second until cancelled (and once more then)."""
    try:
        while True:
            write_counts(path)
            await asyncio.sleep(_WRITE_EVERY_S)
    finally:
        write_counts(path)


def read_counts(path: Path) -> Counter[str]:
    try:
        return Counter(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Counter()


def factory_from_env(factory: ClientFactory) -> tuple[ClientFactory, Path | None]:
    """The counting client when `BENCH_ES_COUNTS` is set (osmem-server only), else `factory`."""
    where = os.environ.get(ENV)
    if not where:
        return factory, None
    return counting_client, Path(where)


def per_lookup(before: Counter[str], after: Counter[str], lookups: int,
               ) -> list[tuple[str, float]]:
    """Requests per lookup by endpoint over a run, most frequent first."""
    diff: dict[str, Any] = {k: after[k] - before.get(k, 0) for k in after}
    return sorted(((k, v / max(lookups, 1)) for k, v in diff.items() if v > 0),
                  key=lambda kv: -kv[1])
