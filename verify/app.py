"""The application factory: `create_app(settings)`; no I/O happens at import."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from fallback.replica import Replica
from fallback.warmup import warm_replica
from indexer.store.elasticsearch import ClientFactory
from verify.access.middleware import check_routes, guard
from verify.access.ratelimit import MemoryRateLimiter, RedisRateLimiter, ResilientRateLimiter
from verify.access.service import Access, open_access
from verify.http.clients import FORWARDED_CLIENTS, ForwardedClients
from verify.http.middlewares import around
from verify.http.responses import SECURITY_HEADERS
from verify.keys import (
    ACCESS,
    ES_CLIENT_FACTORY,
    GAPS,
    INTAKE,
    JOURNALED_INTAKE,
    ORIGINALS,
    OUTAGES,
    QR_POOL,
    RECONCILE_RUNS,
    RECONCILER,
    REGISTRY,
    REPLICA,
    RESILIENCE,
    SERVICES,
    SETTINGS,
    STORE,
    TRUST_ANCHORS,
)
from verify.lookup.reuse import ANSWER_REUSE, AnswerReuse
from verify.lookup.taxpayers import CachedRegistry, data_version
from verify.qr.pool import DecodePool
from verify.qr.preprocess import pin_pixel_limit
from verify.receipts.setup import setup_receipts
from verify.routes import setup_routes
from verify.services import Services, open_services
from verify.settings import Settings
from verify.watches.setup import setup_watches
from verify.web.setup import setup_web


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, streamed ones included, just before its headers are sent. JSON
    answers already carry them (set once in `json_response`, the lookup hot path)."""
    headers = response.headers
    if "X-Content-Type-Options" in headers:
        return
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


def _publish(app: web.Application, services: Services,
             registry_version: Callable[[], int] | None) -> None:
    """The services under the keys the views read."""
    app[SERVICES] = services
    # The request path reads sellers' records through a cache (an import through this app
    # forgets it, and so does the SQLite file's change signal): verify/lookup/taxpayers.py.
    app[STORE], app[REGISTRY], app[ORIGINALS] = (
        services.store, CachedRegistry(services.registry, version=registry_version),
        services.originals)
    app[REPLICA], app[INTAKE] = services.replica, services.intake
    app[OUTAGES], app[GAPS] = services.outages, services.gaps
    app[RESILIENCE], app[JOURNALED_INTAKE] = services.resilience, services.journaled
    app[RECONCILER] = services.reconciler
    settings = app[SETTINGS]
    registry = app[REGISTRY]
    if settings.answer_reuse and isinstance(registry, CachedRegistry):
        # Plain lookups answered again while nothing they were built from changed.
        app[ANSWER_REUSE] = AnswerReuse(
            services.resilience, registry,
            replica_seconds=settings.answer_reuse_replica_ms / 1000)


def _background(app: web.Application, services: Services) -> list[asyncio.Task[Any]]:
    """The health monitor probing primary and replica, the reconciler running whenever the
    primary is usable and there is work, and the warm-up of a replica that starts empty."""
    fb, replica = app[SETTINGS].fallback, services.replica
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(services.monitor.run(), name="health-monitor"),
        asyncio.create_task(services.reconciler.run_forever(
            interval=fb.reconcile_interval_seconds), name="reconciler")]
    if fb.replica_warm_up and replica.warm_up_docs:
        tasks.append(asyncio.create_task(warm_replica(
            services.store, replica, limit=replica.warm_up_docs), name="replica-warm-up"))
    return tasks


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's one context: the service graph (`verify.services`), its background tasks,
    rate limits and the QR decode pool. On shutdown every task it runs (reconcile runs
    started over HTTP included) is cancelled and awaited before anything closes."""
    runs: set[asyncio.Task[Any]] = set()
    app[RECONCILE_RUNS] = runs
    async with open_services(app[SETTINGS], es_client_factory=app[ES_CLIENT_FACTORY],
                             anchors=app[TRUST_ANCHORS], close_dangling=True) as services, \
            _access(app, services.replica) as access, _qr_pool(app) as pool, \
            _registry_version(app[SETTINGS]) as registry_version:
        _publish(app, services, registry_version)
        app[ACCESS], app[QR_POOL] = access, pool
        tasks = _background(app, services)
        try:
            yield
        finally:
            await _cancel([*tasks, *runs])


@contextlib.asynccontextmanager
async def _access(app: web.Application, replica: Replica) -> AsyncIterator[Access]:
    """Rate limits in Redis when configured (shared by all processes, each round trip
    bounded, falling back to this process's buckets if Redis fails), else in memory."""
    settings = app[SETTINGS]
    if not settings.redis_url or settings.insecure_local:
        async with open_access(settings) as access:
            yield access
        return
    # With the Redis replica (always, when INVOICE_REDIS_URL is set: verify/backends.py) the
    # takes share its round trips (fallback/redis_trips.py): one per batch, not two.
    trips = replica.trips
    client = trips.client if trips is not None else Redis.from_url(
        settings.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
    redis = RedisRateLimiter(client, namespace=f"{settings.redis_namespace}:rl", trips=trips)
    try:
        async with open_access(settings, ResilientRateLimiter(redis, MemoryRateLimiter())) \
                as access:
            yield access
    finally:
        await redis.aclose()
        if trips is None:  # a client of its own
            await client.aclose()


@contextlib.asynccontextmanager
async def _registry_version(settings: Settings) -> AsyncIterator[Callable[[], int] | None]:
    """The embedded registry file's change signal (`verify.lookup.taxpayers.data_version`);
    None on Elasticsearch, whose registry has none (its records are kept `TTL_S`)."""
    if settings.es_url:
        yield None
        return
    version, close = data_version(settings.registry_path)
    try:
        yield version
    finally:
        close()


@contextlib.asynccontextmanager
async def _qr_pool(app: web.Application) -> AsyncIterator[DecodePool]:
    """The bounded QR decode pool (verify/qr/pool.py); running decodes finish on shutdown."""
    qr = app[SETTINGS].qr
    pin_pixel_limit(qr.max_pixels)
    pool = DecodePool(qr.workers, qr.max_pending)
    try:
        yield pool
    finally:
        await pool.close()


def create_app(settings: Settings, *,
               es_client_factory: ClientFactory | None = None) -> web.Application:
    """`es_client_factory` builds the Elasticsearch clients (default: the official client
    as configured); tests pass one that speaks to their stand-in server."""
    # Errors and metrics outermost, the access checks inside the same layer, then the pages.
    app = web.Application(middlewares=[around(guard)],
                          client_max_size=settings.max_package_bytes)
    app[SETTINGS] = settings
    app[ES_CLIENT_FACTORY] = es_client_factory
    app.on_response_prepare.append(security_headers)
    # Read once here, not per request: a bad path or PEM stops the start with a SettingsError.
    app[TRUST_ANCHORS] = settings.load_trust_anchors()
    if settings.trusted_proxies:  # X-Forwarded-For from these only (verify/http/clients.py)
        app[FORWARDED_CLIENTS] = ForwardedClients(settings.trusted_proxies)
    app.cleanup_ctx.append(services_ctx)
    setup_routes(app)
    setup_receipts(app)  # its routes and keys (docs/receipts.md)
    setup_watches(app)  # its routes and callbacks (docs/watches.md)
    check_routes(app)
    setup_web(app)  # the pages for people: not API routes (verify/web/dispatch.py)
    return app
