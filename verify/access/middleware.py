"""Authentication, role check and per-key rate limit for every named route.

Fails closed: a route without an entry in `ROUTE_ACCESS` is refused at app creation
(`check_routes`), so nothing is ever served unclassified.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from verify.access.roles import PUBLIC, ROUTE_ACCESS, Principal, admits
from verify.errors import ApiError
from verify.keys import ACCESS

PRINCIPAL = web.RequestKey("principal", Principal)


def check_routes(app: web.Application) -> None:
    for route in app.router.routes():
        if route.name not in ROUTE_ACCESS:
            raise RuntimeError(f"route {route.method} {route.resource} has no access rule "
                               "(verify/access/roles.py ROUTE_ACCESS)")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    name = request.match_info.route.name
    if name is None:  # 404 / 405: nothing to protect, let aiohttp raise it
        return await handler(request)
    if ROUTE_ACCESS[name] is PUBLIC:
        return await handler(request)
    access = request.app[ACCESS]
    principal = await access.authenticate(request)
    if not admits(name, principal):
        raise ApiError(403, "forbidden", f"the {principal.role.value} role may not use this "
                       "endpoint", {"role": principal.role.value})
    await access.spend_key_budget(principal)
    request[PRINCIPAL] = principal
    return await handler(request)
