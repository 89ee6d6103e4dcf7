"""The application factory: `create_app(settings)`; no I/O happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from indexer.intake import Intake
from indexer.store.originals import open_sqlite_originals
from indexer.store.registry import open_sqlite_registry
from indexer.store.sqlite import open_sqlite_store
from verify.access.middleware import access_middleware, check_routes
from verify.access.service import open_access
from verify.keys import (
    ACCESS,
    INTAKE,
    ORIGINALS,
    QR_POOL,
    REGISTRY,
    SETTINGS,
    STORE,
    TRUST_ANCHORS,
)
from verify.middlewares import error_middleware
from verify.qr.pool import DecodePool
from verify.qr.preprocess import pin_pixel_limit
from verify.routes import setup_routes
from verify.settings import Settings, SettingsError

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_sqlite_registry(settings.registry_path) as registry, \
            open_sqlite_originals(settings.originals_path) as originals:
        app[REGISTRY] = registry
        app[ORIGINALS] = originals
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_sqlite_store(settings.sqlite_path) as store:
        app[STORE] = store
        app[INTAKE] = Intake(store, settings.rules, app[REGISTRY], app[ORIGINALS])
        yield


async def access_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_access(app[SETTINGS]) as access:
        app[ACCESS] = access
        yield


async def qr_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bounded QR decode pool (verify/qr/pool.py); running decodes finish on shutdown."""
    qr = app[SETTINGS].qr
    pin_pixel_limit(qr.max_pixels)
    pool = DecodePool(qr.workers, qr.max_pending)
    app[QR_POOL] = pool
    yield
    await pool.close()


def create_app(settings: Settings) -> web.Application:
    if settings.es_url or settings.redis_url:
        raise SettingsError(
            "INVOICE_ES_URL / INVOICE_REDIS_URL are set, but this build only has the embedded "
            "default (SQLite + in-memory replica); unset them to run embedded")
    app = web.Application(middlewares=[security_headers, error_middleware, access_middleware],
                          client_max_size=settings.max_package_bytes)
    app[SETTINGS] = settings
    # Read once here, not per request: a bad path or PEM stops the start with a SettingsError.
    app[TRUST_ANCHORS] = settings.load_trust_anchors()
    app.cleanup_ctx.append(registry_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(access_ctx)
    app.cleanup_ctx.append(qr_ctx)
    setup_routes(app)
    check_routes(app)
    return app
