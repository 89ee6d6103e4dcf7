"""Request handlers: parse the edge, call the core, answer JSON. No rule lives here."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from indexer.package import Package, parse_json_package
from indexer.rules import Violation
from indexer.signature import seller_signature_violations
from indexer.vn_xml import parse_xml_package
from verify.access.middleware import PRINCIPAL
from verify.body import read_body
from verify.errors import ApiError
from verify.fallback_views import split_callback
from verify.keys import ACCESS, INTAKE, ORIGINALS, REPLICA, SETTINGS, STORE, TRUST_ANCHORS
from verify.lookup import parse_lookup
from verify.responses import json_response
from verify.verification import verify_query

_JSON_TYPES = frozenset({"application/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})


async def _seller_signatures(app: web.Application, package: Package,
                             originals: dict[int, bytes]) -> dict[int, list[Violation]]:
    """Seller XML-DSig checks (indexer/signature.py), when trust anchors are configured.

    C14N, digests and RSA over every invoice of a package are CPU work (milliseconds per
    invoice, seconds for a large package); on the event loop they would stall every other
    request for that long (about 1 ms per invoice here: 10 s for a 10,000-invoice package).
    The default executor (a thread pool) is enough: it is one call per package, and the event
    loop keeps turning meanwhile (the GIL is handed over every few milliseconds and lxml
    releases it while parsing), so other requests are served, slower, not stalled. A process
    pool would add parallelism at the cost of pickling every package."""
    anchors = app[TRUST_ANCHORS]
    if not anchors.enabled or not originals:
        return {}
    check = functools.partial(seller_signature_violations, package, originals, anchors,
                              app[SETTINGS].rules)
    return await asyncio.get_running_loop().run_in_executor(None, check)


async def post_package(request: web.Request) -> web.Response:
    if request.content_type not in _JSON_TYPES | _XML_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the package as application/json or application/xml",
                       {"accepted": sorted(_JSON_TYPES | _XML_TYPES),
                        "given": request.content_type})
    settings = request.app[SETTINGS]
    principal = request[PRINCIPAL]
    body = await read_body(request, settings.max_package_bytes)
    originals: dict[int, bytes] = {}
    if request.content_type in _XML_TYPES:
        parsed = parse_xml_package(body, max_items=settings.max_package_items)
        package, originals = parsed.package, parsed.originals
    else:
        package = parse_json_package(body, max_items=settings.max_package_items)
    if not principal.may_send_for(package.sender):
        raise ApiError(403, "sender_not_allowed",
                       "this key may only send packages for its own provider ids",
                       {"sender": package.sender, "allowed": sorted(principal.scopes)})
    signatures = await _seller_signatures(request.app, package, originals)
    result = await request.app[INTAKE].ingest(package, originals, signatures)
    outcome = "replayed" if result.replayed else str(result.notice["result"])
    request.app[ACCESS].audit.record(principal, "intake", package.package_id, outcome,
                                     request.remote)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return json_response(result.notice, status=200, headers=headers)


async def lookup(request: web.Request) -> web.Response:
    params, callback_url = split_callback(request.query)
    query = parse_lookup(params, request.app[SETTINGS].rules)
    return json_response(await verify_query(request, query, callback_url=callback_url))


async def original_xml(request: web.Request) -> web.Response:
    """The invoice's XML as accepted; only for admins and the invoice's parties."""
    doc_id = request.match_info["id"]
    principal = request[PRINCIPAL]
    invoice = await request.app[STORE].get_invoice(doc_id)
    if invoice is None:
        raise ApiError(404, "invoice_not_found", "no indexed invoice has this id",
                       {"id": doc_id})
    if not (principal.sees_tax_id(invoice.seller_tax_id)
            or principal.sees_tax_id(invoice.buyer_tax_id)):
        raise ApiError(403, "not_a_party", "only the seller, the buyer and admins may read "
                       "an invoice's original")
    body = await request.app[ORIGINALS].get(doc_id, invoice.package_id)
    if body is None:
        raise ApiError(404, "original_not_kept", "this invoice arrived as JSON; no original "
                       "document was kept", {"id": doc_id})
    request.app[ACCESS].audit.record(principal, "original.read", doc_id, "ok", request.remote)
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(backend: str, probe: Awaitable[None]) -> dict[str, Any]:
    try:
        await probe
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return {"backend": backend, "ok": False, "error": type(exc).__name__}
    return {"backend": backend, "ok": True}


async def readyz(request: web.Request) -> web.Response:
    """Each dependency's state. Ready means the primary answers; a replica that does not is
    reported (lookups lose their fallback) but does not make the service unready."""
    store, replica = request.app[STORE], request.app[REPLICA]
    checks = {"primary": await _check(store.backend, store.ping()),
              "replica": await _check(replica.backend, replica.ping())}
    ready = bool(checks["primary"]["ok"])
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                         status=200 if ready else 503)
