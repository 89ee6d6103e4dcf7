"""Outage windows over HTTP (docs/outages.md#outage-windows): `GET /outages` lists them,
`POST /outages` declares a maintenance window of the primary or an outage of the
authority's system."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from fallback.outages import OutageError, System, WindowKind
from verify.access.middleware import PRINCIPAL
from verify.http.body import read_json_object
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import ACCESS, OUTAGES
from verify.ops.gaps import MAX_PAGE

SMALL_BODY = 16 * 1024
#: The largest window id a page cursor may name (SQLite's integer range).
MAX_WINDOW_ID = 2**63 - 1


async def list_outages(request: web.Request) -> web.Response:
    q = read_query(request.query, ("system", "kind", "since", "after", "limit"))
    limit = q.integer("limit", low=1, high=MAX_PAGE, default=100)
    windows = await request.app[OUTAGES].list(
        system=q.choice("system", System), kind=q.choice("kind", WindowKind),
        since=q.instant("since"), after=q.integer("after", low=0, high=MAX_WINDOW_ID, default=0),
        limit=limit)
    return json_response({
        "outages": [w.as_dict() for w in windows],
        "next_after": windows[-1].id if len(windows) == limit else None})


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_outage", f"{name} must be a non-empty string",
                       {"field": name})
    return value.strip()


async def declare_outage(request: web.Request) -> web.Response:
    body = await read_json_object(request, SMALL_BODY)
    unknown = sorted(set(body) - {"system", "start", "end", "reason"})
    if unknown:
        raise ApiError(422, "invalid_outage", "unknown field(s)", {"fields": unknown})
    try:
        system = System(_field(body, "system"))
        start = datetime.fromisoformat(_field(body, "start"))
        end = datetime.fromisoformat(_field(body, "end"))
    except ValueError:
        raise ApiError(422, "invalid_outage", "system must be primary or upstream; start and "
                       "end ISO 8601 date-times with a UTC offset") from None
    reason = body.get("reason", "maintenance")
    if not isinstance(reason, str) or len(reason) > 500:
        raise ApiError(422, "invalid_outage", "reason must be a string of at most 500 "
                       "characters", {"field": "reason"})
    principal = request[PRINCIPAL]
    try:
        window = await request.app[OUTAGES].declare(system, start, end, reason,
                                                    principal.key_id)
    except OutageError as exc:
        raise ApiError(422, "invalid_outage", str(exc)) from None
    request.app[ACCESS].audit.record(principal, "outage.declare", f"outage:{window.id}",
                                     f"{window.system}:{window.start.isoformat()}/"
                                     f"{window.end.isoformat() if window.end else ''}",
                                     request.remote)
    return json_response(window.as_dict(), status=201)
