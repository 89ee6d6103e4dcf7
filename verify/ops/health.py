"""`GET /healthz` (the process answers) and `GET /readyz` (each dependency's state, and the
intake journal's entries waiting and set aside).

A dependency's `state` is `ok` (it answered the ping), `unavailable` (it did not: `error`
says why) or, for the primary only, `maintenance`: a declared window is in force, so the
primary is not pinged (lookups do not call it either) and the service is ready, answering
from the replica; `window` names the declaration (docs/operations.md#readiness)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from fallback.outages import System
from verify.http.responses import json_response
from verify.keys import JOURNALED_INTAKE, OUTAGES, REPLICA, STORE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(backend: str, probe: Awaitable[None]) -> dict[str, Any]:
    try:
        await probe
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return {"backend": backend, "ok": False, "state": "unavailable",
                "error": type(exc).__name__}
    return {"backend": backend, "ok": True, "state": "ok"}


async def journal_readiness(app: web.Application) -> dict[str, Any]:
    """The journal in `/readyz`: entries waiting and set aside. Quarantined entries do not
    make the service unready (they block nothing) but are reported for an operator."""
    try:
        counts = await app[JOURNALED_INTAKE].journal.counts()
    except Exception as exc:  # an unreadable journal is reported, not a failed probe
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "pending": counts["pending"], "quarantined": counts["quarantined"]}


_WINDOW = ("id", "start", "end", "reason")


async def _primary(app: web.Application) -> dict[str, Any]:
    store = app[STORE]
    window = app[OUTAGES].active(System.PRIMARY)
    if window is None:
        return await _check(store.backend, store.ping())
    return {"backend": store.backend, "ok": False, "state": "maintenance",
            "window": {k: v for k, v in window.as_dict().items() if k in _WINDOW}}


async def readyz(request: web.Request) -> web.Response:
    """Each dependency's state. Ready means lookups are answered as the deployment intends:
    the primary answers, or a declared maintenance window sends them to the replica. A
    replica that does not answer is reported (lookups lose their fallback) but does not make
    the service unready."""
    replica = request.app[REPLICA]
    checks = {"primary": await _primary(request.app),
              "replica": await _check(replica.backend, replica.ping())}
    ready = checks["primary"]["state"] in {"ok", "maintenance"}
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks,
                          "journal": await journal_readiness(request.app)},
                         status=200 if ready else 503)
