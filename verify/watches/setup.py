"""`setup_watches(app)`: the watches' routes and their callbacks' delivery on the service's
app (docs/watches.md). Called from `verify.app.create_app` right after the API's routes, so
the access check (`verify.access.middleware.check_routes`) sees these routes too. The store
and the fan-out are part of the service graph (`verify.services`), where the intake's and the
reconciler's hooks are wired."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from indexer.store import InvoiceStore
from verify.keys import SERVICES, SETTINGS
from verify.services import callback_policy
from verify.watches import views
from verify.watches.delivery import WatchDelivery
from verify.watches.events import WatchHook

API = "/api/v1"
#: Seconds between looks for callbacks due again (retries); new events wake it at once.
RETRY_LOOK_SECONDS = 5.0
#: Seconds between sweeps (`WatchHook.sweep`: the first at start), and before another try
#: when the primary could not be read.
SWEEP_EVERY_SECONDS = 3600.0
SWEEP_RETRY_SECONDS = 30.0
log = logging.getLogger("verify.watches")


def setup_watches(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post(f"{API}/watches", views.create_watches, name="watches.create"),
            web.get(f"{API}/watches", views.list_watches, name="watches.list"),
            web.get(f"{API}/watches/events", views.watch_events, name="watches.events"),
            web.delete(f"{API}/watches/{{id}}", views.delete_watch, name="watches.delete"),
        ]
    )
    app.cleanup_ctx.append(delivery_ctx)


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the service graph (`verify.app.services_ctx`), whose watch store it records
    into and sends from: the background fan-out of the commits' changes
    (`WatchHook.fan_out`), the callbacks, and the sweep, which finds the events a killed
    process did not record."""
    services = app[SERVICES]
    hook = services.watches
    if hook is None:
        yield
        return
    delivery = WatchDelivery(hook.store, callback_policy(app[SETTINGS]))
    async with hook.fan_out():  # the commits' changes recorded off their path
        tasks = [asyncio.create_task(delivery.run_forever(hook, interval=RETRY_LOOK_SECONDS),
                                     name="watch-callbacks"),
                 asyncio.create_task(sweep_forever(hook, services.store), name="watch-sweep")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their cancellation


async def sweep_forever(hook: WatchHook, store: InvoiceStore) -> None:
    while True:
        try:
            await hook.sweep(store)
        except Exception:  # the primary unavailable, most likely: soon again
            log.warning("watch sweep: the primary could not be read", exc_info=True)
            await asyncio.sleep(SWEEP_RETRY_SECONDS)
            continue
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
