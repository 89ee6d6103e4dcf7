"""The application factory: `create_app(settings)`; no I/O happens at import."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from fallback.breaker import BreakerConfig, CircuitBreaker
from fallback.gaps import open_gap_ledger
from fallback.health import DependencyGuard, HealthMonitor, Metrics
from fallback.outages import System, open_outage_log
from fallback.replica import MemoryReplica, RedisReplica, WriteThrough
from fallback.warmup import warm_replica
from indexer.intake import Intake
from indexer.journal import open_intake_journal
from indexer.store.elasticsearch import ClientFactory
from verify.access.middleware import access_middleware, check_routes
from verify.access.ratelimit import MemoryRateLimiter, RedisRateLimiter, ResilientRateLimiter
from verify.access.service import open_access
from verify.backends import open_invoice_store, open_originals, open_registry, open_replica
from verify.degraded import Resilience
from verify.keys import (
    ACCESS,
    ES_CLIENT_FACTORY,
    GAPS,
    INTAKE,
    JOURNALED_INTAKE,
    ORIGINALS,
    OUTAGES,
    QR_POOL,
    RECONCILER,
    REGISTRY,
    REPLICA,
    RESILIENCE,
    SETTINGS,
    STORE,
    TRUST_ANCHORS,
)
from verify.middlewares import error_middleware
from verify.qr.pool import DecodePool
from verify.qr.preprocess import pin_pixel_limit
from verify.reconciling import journaled_intake, reconciler
from verify.responses import SECURITY_HEADERS
from verify.routes import setup_routes
from verify.settings import Settings


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, streamed ones included, just before its headers are sent. JSON
    answers already carry them (set once in `json_response`, the lookup hot path)."""
    headers = response.headers
    if "X-Content-Type-Options" in headers:
        return
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Shared by every process on Elasticsearch when INVOICE_ES_URL is set, else SQLite."""
    settings, factory = app[SETTINGS], app[ES_CLIENT_FACTORY]
    async with open_registry(settings, factory) as registry, \
            open_originals(settings, factory) as originals:
        app[REGISTRY] = registry
        app[ORIGINALS] = originals
        yield


async def replica_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis when INVOICE_REDIS_URL is set (shared by every process), else in-process."""
    async with open_replica(app[SETTINGS]) as replica:
        app[REPLICA] = replica
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_invoice_store(settings, app[ES_CLIENT_FACTORY]) as store:
        app[STORE] = store
        app[INTAKE] = Intake(store, settings.rules, app[REGISTRY], app[ORIGINALS],
                             after_commit=WriteThrough(app[REPLICA]))
        yield


async def fallback_ctx(app: web.Application) -> AsyncIterator[None]:
    """Breakers around the primary and the replica, the outage log, the gap ledger and the
    intake journal (local SQLite files, written whatever is down), the health monitor
    probing both, and the reconciler running whenever the primary is usable and there is
    work (journal entries, open gaps, callbacks)."""
    settings, fb = app[SETTINGS], app[SETTINGS].fallback
    lag = timedelta(hours=fb.intake_lag_hours)
    config = BreakerConfig(fb.breaker_failures, float(fb.breaker_open_seconds))
    async with open_outage_log(settings.outages_path, horizon=lag + timedelta(days=1)) \
            as outages, open_gap_ledger(settings.gaps_path) as gaps, \
            open_intake_journal(settings.journal_path) as journal:
        await outages.close_dangling()
        primary = DependencyGuard(System.PRIMARY, CircuitBreaker("primary", config), outages)
        replica = DependencyGuard(System.REPLICA, CircuitBreaker("replica", config), outages)
        metrics = Metrics()
        app[OUTAGES], app[GAPS] = outages, gaps
        app[RESILIENCE] = Resilience(
            app[STORE], app[REPLICA], primary, replica, outages, gaps,
            primary_timeout=fb.primary_timeout_ms / 1000, intake_lag=lag, metrics=metrics,
            journal=journal)
        intake = journaled_intake(settings, app[INTAKE], journal, app[REPLICA], primary,
                                  outages, app[TRUST_ANCHORS])
        app[JOURNALED_INTAKE] = intake
        app[RECONCILER] = reconciler(settings, intake, gaps)
        store, replica_store = app[STORE], app[REPLICA]
        monitor = HealthMonitor([(primary, store.ping), (replica, replica_store.ping)],
                                outages, metrics, interval=fb.probe_interval_seconds,
                                timeout=fb.primary_timeout_ms / 1000)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(monitor.run(), name="health-monitor"),
            asyncio.create_task(app[RECONCILER].run_forever(
                interval=fb.reconcile_interval_seconds), name="reconciler")]
        if fb.replica_warm_up and isinstance(replica_store, MemoryReplica):
            # (Redis keeps its copies across restarts)
            tasks.append(asyncio.create_task(warm_replica(
                store, replica_store, limit=replica_store.max_docs), name="replica-warm-up"))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def access_ctx(app: web.Application) -> AsyncIterator[None]:
    """Rate limits in Redis when configured (shared by all processes, each round trip
    bounded, falling back to this process's buckets if Redis fails), else in memory."""
    settings = app[SETTINGS]
    if not settings.redis_url or settings.insecure_local:
        async with open_access(settings) as access:
            app[ACCESS] = access
            yield
        return
    # With the Redis replica (always, when INVOICE_REDIS_URL is set: verify/backends.py) the
    # takes share its round trips (fallback/redis_trips.py): one per batch, not two.
    replica = app[REPLICA]
    trips = replica.trips if isinstance(replica, RedisReplica) else None
    client = trips.client if trips is not None else Redis.from_url(
        settings.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
    redis = RedisRateLimiter(client, namespace=f"{settings.redis_namespace}:rl", trips=trips)
    try:
        async with open_access(settings, ResilientRateLimiter(redis, MemoryRateLimiter())) \
                as access:
            app[ACCESS] = access
            yield
    finally:
        await redis.aclose()
        if trips is None:  # a client of its own
            await client.aclose()


async def qr_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bounded QR decode pool (verify/qr/pool.py); running decodes finish on shutdown."""
    qr = app[SETTINGS].qr
    pin_pixel_limit(qr.max_pixels)
    pool = DecodePool(qr.workers, qr.max_pending)
    app[QR_POOL] = pool
    yield
    await pool.close()


def create_app(settings: Settings, *,
               es_client_factory: ClientFactory | None = None) -> web.Application:
    """`es_client_factory` builds the Elasticsearch clients (default: the official client
    as configured); tests pass one that speaks to their stand-in server."""
    app = web.Application(middlewares=[error_middleware, access_middleware],
                          client_max_size=settings.max_package_bytes)
    app[SETTINGS] = settings
    app[ES_CLIENT_FACTORY] = es_client_factory
    app.on_response_prepare.append(security_headers)
    # Read once here, not per request: a bad path or PEM stops the start with a SettingsError.
    app[TRUST_ANCHORS] = settings.load_trust_anchors()
    app.cleanup_ctx.append(registry_ctx)
    app.cleanup_ctx.append(replica_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(fallback_ctx)
    app.cleanup_ctx.append(access_ctx)
    app.cleanup_ctx.append(qr_ctx)
    setup_routes(app)
    check_routes(app)
    return app
