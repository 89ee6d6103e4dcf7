"""Authentication, role check and per-key rate limit for every named route.

Fails closed: a route without an entry in `ROUTE_ACCESS` is refused at app creation
(`check_routes`), so nothing is ever served unclassified.

The key's budget is spent before the handler runs, except on `GET /invoices/lookup`: its
handler parses the query (no I/O) and spends the key budget in the same limiter call as the
lookup's own budgets (`verify_query`), one call and, with Redis, one round trip instead of
two. Whatever stops the handler before that (a bad query) leaves the budget to be spent
here after it, so every request still pays it, and a key out of budget gets 429 either way.

A batch spends its key's budget once per row (`BUDGET_PER_LOOKUP`), and a QR photo once per
code, as that many lookups would: neither is a way around the key's rate. Rows wait for the
refill rather than fail (`verify.access.service.KeyDue.PACED`); a request with nothing to
look up still pays one, and one from a key whose next token is further away than a row may
wait is refused before its body is read.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from verify.access.roles import PUBLIC, ROUTE_ACCESS, Principal, admits
from verify.access.service import KeyDue
from verify.http.clients import FORWARDED_CLIENTS
from verify.http.errors import ApiError
from verify.keys import ACCESS

PRINCIPAL = web.RequestKey("principal", Principal)
#: True while the key budget of a request is left to its handler and not spent yet.
KEY_BUDGET_DUE = web.RequestKey("key_budget_due", bool)
#: True when every lookup of the request spends the key budget (`BUDGET_PER_LOOKUP`).
KEY_BUDGET_EACH = web.RequestKey("key_budget_each", bool)
#: Routes whose handler spends the key budget itself (through `verify_query`).
BUDGET_IN_HANDLER = frozenset({"invoices.lookup", "verify.batch", "verify.qr"})
#: Of those, the routes whose every lookup spends it (a batch's rows, a photo's codes).
BUDGET_PER_LOOKUP = frozenset({"verify.batch", "verify.qr"})


def key_due(request: web.Request) -> KeyDue:
    """Whether the lookup about to run spends its key's budget with its own takes: the first
    lookup of a request whose budget was left to its handler, or every row of a batch."""
    if not request.get(KEY_BUDGET_DUE, False):
        return KeyDue.PACED if request.get(KEY_BUDGET_EACH, False) else KeyDue.NO
    request[KEY_BUDGET_DUE] = False
    return KeyDue.PACED if request.get(KEY_BUDGET_EACH, False) else KeyDue.ONCE


def check_routes(app: web.Application) -> None:
    for route in app.router.routes():
        if route.name not in ROUTE_ACCESS:
            raise RuntimeError(f"route {route.method} {route.resource} has no access rule "
                               "(verify/access/roles.py ROUTE_ACCESS)")


async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The access checks in front of `handler`; run inside the error middleware's layer
    (`verify.http.middlewares.around`), not as a middleware of their own."""
    app = request.app  # a property, and each app[...] a call: read once
    forwarded = app.get(FORWARDED_CLIENTS)
    if forwarded is not None:  # behind trusted proxies: `remote` is the client from here on
        request = forwarded.resolve(request)
    name = request.match_info.route.name
    if name is None:  # 404 / 405: nothing to protect, let aiohttp raise it
        return await handler(request)
    if ROUTE_ACCESS[name] is PUBLIC:
        return await handler(request)
    access = app[ACCESS]
    principal = await access.authenticate(request)
    if not admits(name, principal):
        raise ApiError(403, "forbidden", f"the {principal.role.value} role may not use this "
                       "endpoint", {"role": principal.role.value})
    request[PRINCIPAL] = principal
    if name not in BUDGET_IN_HANDLER:
        await access.spend_key_budget(principal)
        return await handler(request)
    request[KEY_BUDGET_DUE] = True
    request[KEY_BUDGET_EACH] = each = name in BUDGET_PER_LOOKUP
    if each:  # no token soon: refused before the body is even read
        await access.spend_key_budget(principal, peek=True)
    try:
        return await handler(request)
    finally:
        if request[KEY_BUDGET_DUE]:  # the handler stopped before its lookup
            request[KEY_BUDGET_DUE] = False
            await access.spend_key_budget(principal)
