"""`setup_watches(app)`: the watches' routes and their callbacks' delivery on the service's
app (docs/watches.md). Called from `verify.app.create_app` right after the API's routes, so
the access check (`verify.access.middleware.check_routes`) sees these routes too. The store
and the fan-out are part of the service graph (`verify.services`), where the intake's and the
reconciler's hooks are wired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from verify.keys import SERVICES, SETTINGS
from verify.services import callback_policy
from verify.watches import views
from verify.watches.delivery import WatchDelivery

API = "/api/v1"
#: Seconds between looks for callbacks due again (retries); new events wake it at once.
RETRY_LOOK_SECONDS = 5.0


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
    """After the service graph (`verify.app.services_ctx`), whose watch store it sends from."""
    hook = app[SERVICES].watches
    if hook is None:
        yield
        return
    delivery = WatchDelivery(hook.store, callback_policy(app[SETTINGS]))
    task = asyncio.create_task(delivery.run_forever(hook, interval=RETRY_LOOK_SECONDS),
                               name="watch-callbacks")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its cancellation, awaited
