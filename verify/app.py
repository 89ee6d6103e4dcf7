"""The application factory: `create_app(settings)`; no I/O happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from indexer.intake import Intake
from indexer.store.sqlite import open_sqlite_store
from verify.keys import INTAKE, SETTINGS, STORE
from verify.middlewares import error_middleware
from verify.routes import setup_routes
from verify.settings import Settings, SettingsError


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_sqlite_store(settings.sqlite_path) as store:
        app[STORE] = store
        app[INTAKE] = Intake(store, settings.rules)
        yield


def create_app(settings: Settings) -> web.Application:
    if settings.es_url or settings.redis_url:
        raise SettingsError(
            "INVOICE_ES_URL / INVOICE_REDIS_URL are set, but this build only has the embedded "
            "default (SQLite + in-memory replica); unset them to run embedded")
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=settings.max_package_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(store_ctx)
    setup_routes(app)
    return app
