"""Gap ledger, outage windows and metrics over HTTP (README "Outages").

Tenancy of gaps: admins see every gap. Any other key (verify or audit) sees the gaps it
asked about itself, and an audit key also those whose seller (known from a Vietnamese key)
is one of its scoped tax ids. A gap whose seller is unknown (asked by authority code or by
a Chinese code and number, which do not name the seller) is visible only to admins and to
its own requesters: who asked about what is not another tenant's business. Non-admins see
only their own entry in `requesters` (key id and callback URL).
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDict, MultiMapping

from fallback.callbacks import callback_host, is_public, literal_host
from fallback.gaps import GapReason, GapStatus, Visibility, visible
from fallback.outages import OutageError, System, WindowKind
from verify import journal_views
from verify.access.middleware import PRINCIPAL
from verify.access.roles import Principal, Role
from verify.access.tenancy import redact_gap
from verify.http.body import read_json_object
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import (
    ACCESS,
    GAPS,
    JOURNALED_INTAKE,
    OUTAGES,
    RECONCILE_RUNS,
    RECONCILER,
    RESILIENCE,
)

SMALL_BODY = 16 * 1024
MAX_CALLBACK_URL = 2048


def _bad(message: str, parameter: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, {"parameter": parameter})


#: Page sizes and cursors of the gap and outage lists.
MAX_PAGE = 1000
MAX_WINDOW_ID = 2**63 - 1
MAX_GAP_ID = 200


def validate_callback_url(raw: str, *, allow_private: bool) -> str:
    """An absolute http(s) URL with a host, stored with the gap for the reconciler. An IP
    address that is not globally routable is refused here already unless `allow_private`;
    a host name is checked when the callback is sent (`fallback/callbacks.py`)."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in {"http", "https"} or not parts.hostname
            or len(raw) > MAX_CALLBACK_URL or any(c.isspace() for c in raw)):
        raise _bad("callback_url must be an absolute http or https URL (at most "
                   f"{MAX_CALLBACK_URL} characters)", "callback_url")
    try:
        host, literal = callback_host(raw), literal_host(raw)
    except ValueError:
        raise _bad("callback_url must be an absolute http or https URL (at most "
                   f"{MAX_CALLBACK_URL} characters)", "callback_url") from None
    if literal is not None and not _is_ip(host):  # a legacy spelling of an IPv4 address
        raise _bad("callback_url must name its host, or give an IP address in the standard "
                   "dotted or IPv6 form (not 127.1, 2130706433 or 0x7f.1)", "callback_url")
    if literal is not None and not allow_private and not is_public(literal):
        raise _bad("callback_url must not point at a loopback or private address",
                   "callback_url")
    return raw


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def split_callback(query: MultiMapping[str], *, allow_private: bool,
                   ) -> tuple[MultiMapping[str], str | None]:
    """The lookup parameters without `callback_url`, and that URL validated (if given)."""
    urls = query.getall("callback_url", [])
    if not urls:
        return query, None
    if len(urls) > 1:
        raise ApiError(400, "repeated_parameter", "each parameter may be given once",
                       {"parameters": ["callback_url"]})
    rest = MultiDict((k, v) for k, v in query.items() if k != "callback_url")
    return rest, validate_callback_url(urls[0].strip(), allow_private=allow_private)


def _visibility(principal: Principal) -> Visibility | None:
    if principal.role is Role.ADMIN:
        return None
    tax_ids = principal.scopes if principal.role is Role.AUDIT else frozenset()
    return Visibility(principal.key_id, tax_ids)


async def list_gaps(request: web.Request) -> web.Response:
    q = read_query(request.query, ("status", "reason", "since", "after", "limit"))
    limit = q.integer("limit", low=1, high=MAX_PAGE, default=100)
    who = _visibility(request[PRINCIPAL])
    gaps = await request.app[GAPS].list(
        status=q.choice("status", GapStatus), reason=q.choice("reason", GapReason),
        since=q.instant("since"), after=q.text("after", max_len=MAX_GAP_ID), limit=limit,
        visible_to=who)
    shown = None if who is None else {who.key_id}
    principal = request[PRINCIPAL]
    return json_response({
        "gaps": [redact_gap(g.as_dict(requesters=shown), principal) for g in gaps],
        "next_after": gaps[-1].id if len(gaps) == limit else None})


async def get_gap(request: web.Request) -> web.Response:
    gap_id = request.match_info["id"]
    who = _visibility(request[PRINCIPAL])
    gap = await request.app[GAPS].get(gap_id)
    if gap is None or not visible(gap, who):  # not someone else's: 404 either way
        raise ApiError(404, "gap_not_found", "no gap with this id", {"id": gap_id})
    return json_response(redact_gap(gap.as_dict(requesters=None if who is None else {who.key_id}),
                                    request[PRINCIPAL]))


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


def _line(name: str, value: float, **labels: str) -> str:
    if not labels:
        return f"{name} {value}"
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {value}"


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format (0.0.4), written by hand: a few counters and gauges."""
    resilience = request.app[RESILIENCE]
    lines = ["# TYPE invoice_breaker_state gauge"]
    guards = (resilience.primary, resilience.replica_guard)
    for guard in guards:
        for state in ("closed", "open", "half_open"):
            lines.append(_line("invoice_breaker_state", int(guard.breaker.state == state),
                               system=str(guard.system), state=state))
    for name in ("failures", "rejected", "opened"):
        lines.append(f"# TYPE invoice_breaker_{name}_total counter")
        lines.extend(_line(f"invoice_breaker_{name}_total",
                           getattr(g.breaker.counters, name), system=str(g.system))
                     for g in guards)
    lines.append("# TYPE invoice_maintenance_active gauge")
    lines.append(_line("invoice_maintenance_active",
                       int(resilience.outages.active(System.PRIMARY) is not None)))
    m = resilience.metrics
    lines.append("# TYPE invoice_answers_total counter")
    lines.extend(_line("invoice_answers_total", n, source=src, status=status)
                 for (src, status), n in sorted(m.answers.items()))
    lines.append("# TYPE invoice_gaps_recorded_total counter")
    lines.extend(_line("invoice_gaps_recorded_total", n, reason=r)
                 for r, n in sorted(m.gaps.items()))
    lines.append("# TYPE invoice_probe_failures_total counter")
    lines.extend(_line("invoice_probe_failures_total", n, system=s)
                 for s, n in sorted(m.probe_failures.items()))
    lines.extend(await journal_views.metric_lines(request.app))
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-store"})
