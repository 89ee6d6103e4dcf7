"""`GET /metrics`: the Prometheus text exposition (0.0.4) written by prometheus-client, with
HELP and TYPE lines: requests and latency by route template, method and status, answers by
source and status, breaker states and counters, maintenance in force, the intake journal's
entries by state, gaps recorded by reason and in the ledger by status, probe failures and
the reconciler's runs (`fallback/metrics.py`; docs/operations.md#metrics)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from verify.keys import SERVICES

_HEADERS = {
    "Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def metrics(request: web.Request) -> web.Response:
    """Every value read now (the journal, the ledger, the breakers), then the exposition."""
    metrics = request.app[SERVICES].metrics
    await metrics.sample()
    return web.Response(body=metrics.exposition(), headers=_HEADERS)
