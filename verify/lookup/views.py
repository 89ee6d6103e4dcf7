"""`GET /invoices/lookup` and `GET /invoices/{id}/original.xml`: parse the edge, call the
core, answer. No rule lives here."""

from __future__ import annotations

from datetime import datetime

import orjson
from aiohttp import web

from fallback.lookup.seller_status import taxpayer_answer
from indexer import vn
from indexer.model import SCHEME_TZ
from verify.access.middleware import PRINCIPAL
from verify.access.service import is_party
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_body, json_response
from verify.keys import ACCESS, ORIGINALS, REGISTRY, SETTINGS, STORE
from verify.lookup.callback_url import MAX_CALLBACK_URL, validate_callback_url
from verify.lookup.query import path_key, read_lookup
from verify.lookup.reuse import ANSWER_REUSE
from verify.lookup.verification import check_query, verify_query
from verify.receipts.flag import split_receipt
from verify.receipts.views import require_receipts
from verify.watches.flag import split_watch
from verify.watches.views import require_room, watch_answer


async def lookup(request: web.Request) -> web.Response:
    """A plain lookup (no receipt, watch or callback) is answered again from what it was
    last answered while nothing it was built from changed (`verify.lookup.reuse`)."""
    reuse = request.app.get(ANSWER_REUSE)
    if reuse is not None:
        principal = request[PRINCIPAL]
        raw_query = request.raw_path.partition("?")[2]
        kept = reuse.find(principal, raw_query)
        if kept is not None:
            return await reuse.answer_again(request, principal, kept)
    settings = request.app[SETTINGS]
    receipt, params = split_receipt(request.query)
    watch, params = split_watch(params)  # watch the answered invoice (docs/watches.md)
    query, callback = read_lookup(params, settings.rules, MAX_CALLBACK_URL)
    callback_url = (
        None
        if callback is None
        else validate_callback_url(callback, allow_private=settings.fallback.callback_allow_private)
    )
    if receipt:
        require_receipts(request)
    if watch:
        await require_room(request)
    if reuse is not None and not (receipt or watch or callback_url):
        begun = reuse.begin()
        checked = await check_query(request, query)
        body = orjson.dumps(checked.answer)
        if begun is None:
            reuse.built()
        else:
            reuse.keep(begun, principal, raw_query, query, checked.answer, checked.invoice,
                       checked.target, body)
        return json_body(body)
    answer = await verify_query(request, query, callback_url=callback_url, receipt=receipt)
    if watch:
        answer = await watch_answer(request, answer, query.lookup_key, callback_url=callback_url)
    if reuse is not None:
        reuse.built()
    return json_response(answer)


async def original_xml(request: web.Request) -> web.Response:
    """The invoice's XML as accepted; only for admins and the invoice's parties. To anyone
    else an invoice that is not theirs answers exactly as one that does not exist (404, a
    miss spent), so this is no way to learn which invoices exist; every request spends the
    lookup budgets and is in the audit trail, as a lookup is."""
    doc_id = request.match_info["id"]
    key = path_key(doc_id)
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    await access.admit(principal, key.doc_id)  # the invoice's day spent: parties only anyway
    invoice = await request.app[STORE].get_invoice(key.doc_id)
    if invoice is None or not is_party(principal, invoice.seller_tax_id, invoice.buyer_tax_id):
        await access.note_miss(principal, key.doc_id)
        access.audit.record(principal, "original.read", key.doc_id, "not_found", request.remote)
        raise ApiError(
            404,
            "invoice_not_found",
            "no indexed invoice of which this key is a party has this id",
            {"id": doc_id},
        )
    body = await request.app[ORIGINALS].get(invoice.doc_id, invoice.package_id)
    outcome = "ok" if body is not None else "original_not_kept"
    access.audit.record(principal, "original.read", invoice.doc_id, outcome, request.remote)
    if body is None:
        raise ApiError(
            404,
            "original_not_kept",
            "this invoice arrived as JSON; no original document was kept",
            {"id": doc_id},
        )
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


async def taxpayer(request: web.Request) -> web.Response:
    """`GET /taxpayers/{tax_id}`: a Vietnamese seller's registry status, today and on `on`
    (a day, e.g. an invoice's issue date), with the warnings a lookup would give; in the
    audit trail as `taxpayer.read`. Unknown to the registry: 404."""
    on = read_query(request.query, {"on"}).day("on")
    tax_id = vn.normalise_tax_id(request.match_info["id"])
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    found = (await request.app[REGISTRY].get_taxpayers([tax_id])).get(tax_id)
    access.audit.record(
        principal, "taxpayer.read", tax_id, "ok" if found else "not_found", request.remote
    )
    if found is None:
        raise ApiError(
            404,
            "taxpayer_not_found",
            "the registry holds no taxpayer with this tax id",
            {"tax_id": tax_id},
        )
    today = datetime.now(SCHEME_TZ["vn"]).date()
    return json_response(taxpayer_answer(found, today, on))
