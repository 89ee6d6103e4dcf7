"""Request handlers: parse the edge, call the core, answer JSON. No rule lives here."""

from __future__ import annotations

from aiohttp import web

from indexer.package import parse_json_package
from verify.access.middleware import PRINCIPAL
from verify.access.tenancy import redact_answer
from verify.answer import build_answer
from verify.body import read_body
from verify.errors import ApiError
from verify.keys import ACCESS, INTAKE, SETTINGS, STORE
from verify.lookup import parse_lookup
from verify.responses import json_response

_JSON_TYPES = frozenset({"application/json"})


async def post_package(request: web.Request) -> web.Response:
    if request.content_type not in _JSON_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the package as application/json",
                       {"accepted": sorted(_JSON_TYPES), "given": request.content_type})
    settings = request.app[SETTINGS]
    principal = request[PRINCIPAL]
    body = await read_body(request, settings.max_package_bytes)
    package = parse_json_package(body, max_items=settings.max_package_items)
    if not principal.may_send_for(package.sender):
        raise ApiError(403, "sender_not_allowed",
                       "this key may only send packages for its own provider ids",
                       {"sender": package.sender, "allowed": sorted(principal.scopes)})
    result = await request.app[INTAKE].ingest(package)
    outcome = "replayed" if result.replayed else str(result.notice["result"])
    request.app[ACCESS].audit.record(principal, "intake", package.package_id, outcome,
                                     request.remote)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return json_response(result.notice, status=200, headers=headers)


async def lookup(request: web.Request) -> web.Response:
    query = parse_lookup(request.query, request.app[SETTINGS].rules)
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    target = query.key.doc_id if query.key else f"authority_code:{query.authority_code}"
    await access.spend_lookup_budget(principal, target)
    store = request.app[STORE]
    if query.key is not None:
        invoice = await store.get_invoice(query.key.doc_id)
    else:
        assert query.authority_code is not None
        invoice = await store.find_by_authority_code(query.authority_code)
    answer = build_answer(query, invoice)
    if invoice is None:
        await access.note_miss(principal)
    access.audit.record(principal, "verify", invoice.doc_id if invoice else target,
                        answer["status"], request.remote)
    return json_response(redact_answer(answer, principal))


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        await store.ping()
        primary = {"backend": store.backend, "ok": True}
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        primary = {"backend": store.backend, "ok": False, "error": type(exc).__name__}
    ready = bool(primary["ok"])
    return json_response({"status": "ready" if ready else "not_ready",
                          "checks": {"primary": primary}}, status=200 if ready else 503)
