"""The gap ledger over HTTP (docs/outages.md#gap-ledger): `GET /gaps`, `GET /gaps/{id}`.

Tenancy of gaps: admins see every gap. Any other key (verify or audit) sees the gaps it
asked about itself, and an audit key also those whose seller (known from a Vietnamese key)
is one of its scoped tax ids. A gap whose seller is unknown (asked by authority code or by
a Chinese code and number, which do not name the seller) is visible only to admins and to
its own requesters: who asked about what is not another tenant's business. Non-admins see
only their own entry in `requesters` (key id and callback URL).

A resolved gap's answer is shown as a lookup would answer now (`fallback.lookup.gap_facts`):
the seller's status and warnings, the verification window's reason for a miss, and to a
caller who is no party to a Chinese invoice its status only (the gap keeps no second factor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from fallback.gaps import Gap, GapReason, GapStatus, Visibility, visible
from fallback.lookup.gap_facts import GapFacts, guard_gap_answer
from verify.access.middleware import PRINCIPAL
from verify.access.roles import Principal, Role
from verify.access.service import is_party
from verify.access.tenancy import redact_gap
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import GAPS, REGISTRY, SETTINGS

#: The largest page of the gap and outage lists.
MAX_PAGE = 1000
#: The longest gap id a page cursor may name.
MAX_GAP_ID = 200


def _visibility(principal: Principal) -> Visibility | None:
    if principal.role is Role.ADMIN:
        return None
    tax_ids = principal.scopes if principal.role is Role.AUDIT else frozenset()
    return Visibility(principal.key_id, tax_ids)


def gap_facts(app: web.Application) -> GapFacts:
    """The facts of gap answers on this app's registry and settings."""
    return GapFacts(app[REGISTRY], window_years=app[SETTINGS].verification_window_years)


async def _shown(request: web.Request, gaps: Sequence[Gap],
                 requesters: set[str] | None) -> list[dict[str, Any]]:
    """Each gap as this caller may see it: its answer with a lookup's facts, the second
    factor applied unless the caller is a party, then the tenancy redaction."""
    principal = request[PRINCIPAL]
    answers = await gap_facts(request.app).answers(gaps)
    factor = request.app[SETTINGS].cn_second_factor
    out = []
    for gap in gaps:
        shown = gap.as_dict(requesters=requesters)
        answer = answers.get(gap.id)
        if answer is not None:
            facts = answer.get("invoice") or {}
            if factor and not is_party(principal, facts.get("seller_tax_id"),
                                       facts.get("buyer_tax_id")):
                answer = guard_gap_answer(answer, gap)
            shown["answer"] = answer
        out.append(redact_gap(shown, principal))
    return out


async def list_gaps(request: web.Request) -> web.Response:
    q = read_query(request.query, ("status", "reason", "since", "after", "limit"))
    limit = q.integer("limit", low=1, high=MAX_PAGE, default=100)
    who = _visibility(request[PRINCIPAL])
    gaps = await request.app[GAPS].list(
        status=q.choice("status", GapStatus), reason=q.choice("reason", GapReason),
        since=q.instant("since"), after=q.text("after", max_len=MAX_GAP_ID), limit=limit,
        visible_to=who)
    shown = None if who is None else {who.key_id}
    return json_response({
        "gaps": await _shown(request, gaps, shown),
        "next_after": gaps[-1].id if len(gaps) == limit else None})


async def get_gap(request: web.Request) -> web.Response:
    gap_id = request.match_info["id"]
    who = _visibility(request[PRINCIPAL])
    gap = await request.app[GAPS].get(gap_id)
    if gap is None or not visible(gap, who):  # not someone else's: 404 either way
        raise ApiError(404, "gap_not_found", "no gap with this id", {"id": gap_id})
    shown = await _shown(request, [gap], None if who is None else {who.key_id})
    return json_response(shown[0])
