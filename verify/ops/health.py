"""`GET /healthz` (the process answers) and `GET /readyz` (each dependency's state, and the
intake journal's entries waiting and set aside)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from verify.http.responses import json_response
from verify.keys import JOURNALED_INTAKE, REPLICA, STORE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(backend: str, probe: Awaitable[None]) -> dict[str, Any]:
    try:
        await probe
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return {"backend": backend, "ok": False, "error": type(exc).__name__}
    return {"backend": backend, "ok": True}


async def journal_readiness(app: web.Application) -> dict[str, Any]:
    """The journal in `/readyz`: entries waiting and set aside. Quarantined entries do not
    make the service unready (they block nothing) but are reported for an operator."""
    try:
        counts = await app[JOURNALED_INTAKE].journal.counts()
    except Exception as exc:  # an unreadable journal is reported, not a failed probe
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "pending": counts["pending"], "quarantined": counts["quarantined"]}


async def readyz(request: web.Request) -> web.Response:
    """Each dependency's state. Ready means the primary answers; a replica that does not is
    reported (lookups lose their fallback) but does not make the service unready."""
    store, replica = request.app[STORE], request.app[REPLICA]
    checks = {"primary": await _check(store.backend, store.ping()),
              "replica": await _check(replica.backend, replica.ping())}
    ready = bool(checks["primary"]["ok"])
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks,
                          "journal": await journal_readiness(request.app)},
                         status=200 if ready else 503)
