"""Reconcile runs over HTTP: `GET /reconcile/status`, `POST /reconcile`
(docs/outages.md#the-reconciler)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from fallback.gaps import GapStatus
from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS, GAPS, JOURNALED_INTAKE, RECONCILE_RUNS, RECONCILER


async def _reconcile_status(app: web.Application) -> dict[str, Any]:
    reconciler = app[RECONCILER]
    journal = app[JOURNALED_INTAKE].journal
    return {"running": reconciler.running, "run": reconciler.progress.as_dict(),
            "journal": await journal.counts(),
            "open_gaps": await app[GAPS].count(GapStatus.OPEN)}


async def reconcile_status(request: web.Request) -> web.Response:
    """The current or last run's progress, the journal's entries and the open gaps."""
    return json_response(await _reconcile_status(request.app))


async def start_reconcile(request: web.Request) -> web.Response:
    """Start a run now (in the background; one at a time) and answer 202 with the status to
    poll. A run already going is not started twice: the answer says it is running. While
    the primary may not be used (maintenance, open breaker): 409, nothing started."""
    reconciler = request.app[RECONCILER]
    if reconciler.ready is not None and not reconciler.ready():
        raise ApiError(409, "primary_unavailable", "the primary index is in a maintenance "
                       "window or its breaker is open; the reconciler runs by itself when "
                       "it is back")
    started = not reconciler.running
    if started:
        task = asyncio.create_task(reconciler.run(), name="reconcile-now")
        runs = request.app[RECONCILE_RUNS]  # the app's context cancels it at shutdown
        runs.add(task)
        task.add_done_callback(runs.discard)
        await asyncio.sleep(0)  # let it take its lock, so the status says running
    request.app[ACCESS].audit.record(request[PRINCIPAL], "reconcile.start", "reconciler",
                                     "started" if started else "already_running",
                                     request.remote)
    return json_response({"started": started, **await _reconcile_status(request.app)},
                         status=202)
