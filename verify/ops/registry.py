"""`POST /admin/registry`: the taxpayer and provider registry the intake rules read, imported
(upserted) from a JSON or CSV upload; a file with any error changes nothing."""

from __future__ import annotations

from aiohttp import web

from indexer.registry import RegistryError, parse_registry
from verify.access.middleware import PRINCIPAL
from verify.http.body import read_body
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS, REGISTRY

REGISTRY_BODY = 50 * 1024 * 1024
REGISTRY_TYPES = frozenset({"application/json", "text/csv"})


async def import_registry(request: web.Request) -> web.Response:
    if request.content_type not in REGISTRY_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the registry as application/json "
                       "or text/csv", {"accepted": sorted(REGISTRY_TYPES)})
    body = await read_body(request, REGISTRY_BODY)
    try:
        parsed = parse_registry(body, request.content_type)
    except RegistryError as exc:
        raise ApiError(422, "invalid_registry", str(exc)) from None
    registry = request.app[REGISTRY]
    await registry.import_registry(parsed)
    request.app[ACCESS].audit.record(
        request[PRINCIPAL], "registry.import", None,
        f"{len(parsed.taxpayers)} taxpayers, {len(parsed.providers)} providers", request.remote)
    return json_response({"imported": {"taxpayers": len(parsed.taxpayers),
                                       "providers": len(parsed.providers)},
                          "totals": await registry.counts()})
