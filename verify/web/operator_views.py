"""The operator's page: primary and replica (breakers, probe failures), outage windows on a
timeline with a form to declare a maintenance window (as `POST /api/v1/outages`), the intake
journal (pending, quarantined), the reconciler's progress (live, from `GET
/api/v1/reconcile/status`) and the open gaps by reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from fallback.gaps import GapReason, GapStatus
from fallback.outages import OutageError, System
from indexer.journal import EntryState
from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.keys import ACCESS, GAPS, JOURNALED_INTAKE, OUTAGES, RESILIENCE
from verify.ops import reconcile
from verify.web.forms import FORM
from verify.web.render import page
from verify.web.svg import WIDTH, timeline

#: Open gaps counted per reason up to this many (more shows as "1000+").
GAP_COUNT_CAP = 1000
OFFSETS = ("+00:00", "+07:00", "+08:00")  # the first is the default: "now" is in UTC


async def status(request: web.Request) -> dict[str, Any]:
    response = await reconcile.reconcile_status(request)
    assert isinstance(response.body, bytes)
    result: dict[str, Any] = orjson.loads(response.body)
    return result


async def _gaps_by_reason(request: web.Request) -> list[tuple[str, int]]:
    ledger = request.app[GAPS]
    return [
        (
            str(reason),
            len(await ledger.list(status=GapStatus.OPEN, reason=reason, limit=GAP_COUNT_CAP)),
        )
        for reason in GapReason
    ]


async def operator(
    request: web.Request, *, error: ApiError | None = None, declared: dict[str, Any] | None = None
) -> web.StreamResponse:
    resilience = request.app[RESILIENCE]
    outages = request.app[OUTAGES]
    now = datetime.now(UTC)
    windows = [w.as_dict() for w in await outages.list(since=now - timedelta(days=7), limit=200)]
    journal = request.app[JOURNALED_INTAKE].journal
    guards = [
        (g.system, g.breaker.state, g.breaker.counters)
        for g in (resilience.primary, resilience.replica_guard)
    ]
    maintenance = outages.active(System.PRIMARY)
    return await page(
        request,
        "operator.html",
        {
            "guards": guards,
            "probe_failures": dict(resilience.metrics.probe_failures),
            "last_probe": dict(resilience.metrics.last_probe),
            "maintenance": maintenance.as_dict() if maintenance else None,
            "windows": windows,
            "bars": timeline(windows, now - timedelta(days=7), now + timedelta(days=2)),
            "width": WIDTH,
            "status": await status(request),
            "quarantined": [
                e.summary()
                for e in await journal.entries(EntryState.QUARANTINED, after=0, limit=50)
            ],
            "gaps": await _gaps_by_reason(request),
            "gap_cap": GAP_COUNT_CAP,
            "offsets": OFFSETS,
            "error": error,
            "declared": declared,
            "now": now.strftime("%Y-%m-%dT%H:%M"),
        },
        status=error.status if error else 200,
    )


async def operator_page(request: web.Request) -> web.StreamResponse:
    return await operator(request)


def _moment(value: str, offset: str, name: str) -> datetime:
    if offset not in OFFSETS:
        raise ApiError(422, "invalid_outage", "choose a UTC offset", {"field": "offset"})
    try:
        return datetime.fromisoformat(f"{value}{offset}")
    except ValueError:
        raise ApiError(
            422, "invalid_outage", f"{name} must be a date and time", {"field": name}
        ) from None


async def declare(request: web.Request) -> web.StreamResponse:
    """What `declare_outage` does, from the page's form."""
    form = request[FORM]
    try:
        try:
            system = System(form.get("system"))
        except ValueError:
            raise ApiError(
                422, "invalid_outage", "system must be primary or upstream", {"field": "system"}
            ) from None
        start = _moment(form.get("start"), form.get("offset"), "start")
        end = _moment(form.get("end"), form.get("offset"), "end")
        reason = form.get("reason")[:500] or "maintenance"
        principal = request[PRINCIPAL]
        try:
            window = await request.app[OUTAGES].declare(
                system, start, end, reason, principal.key_id
            )
        except OutageError as exc:
            raise ApiError(422, "invalid_outage", str(exc)) from None
    except ApiError as exc:
        return await operator(request, error=exc)
    request.app[ACCESS].audit.record(
        principal,
        "outage.declare",
        f"outage:{window.id}",
        f"{window.system}:{window.start.isoformat()}/"
        f"{window.end.isoformat() if window.end else ''}",
        request.remote,
    )
    raise web.HTTPSeeOther("/web/operator")
