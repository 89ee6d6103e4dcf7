"""`GET /api/v1/invoices/{id}/lines` (docs/lookups.md#the-invoice-lines): the goods lines of
an invoice as received (vn-einvoice §5.4: name, quantity, unit, unit price, amount, tax
rate, ...), parsed from its stored original (`indexer.vn_xml.lines_of_original`); the
model holds no lines. Beside `GET /invoices/{id}/original.xml` and with its rules: only
admins and the invoice's parties; to anyone else an invoice that is not theirs answers as
one that does not exist (404, a miss spent); every request spends the lookup budgets and is
in the audit trail (`lines.read`)."""

from __future__ import annotations

from aiohttp import web

from verify.access.middleware import PRINCIPAL
from verify.access.service import is_party
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS, STORE
from verify.lookup.file_check import stored_lines
from verify.lookup.query import path_key


async def invoice_lines(request: web.Request) -> web.Response:
    doc_id = request.match_info["id"]
    key = path_key(doc_id)
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    await access.admit(principal, key.doc_id)
    invoice = await request.app[STORE].get_invoice(key.doc_id)
    if invoice is None or not is_party(principal, invoice.seller_tax_id, invoice.buyer_tax_id):
        await access.note_miss(principal, key.doc_id)
        access.audit.record(principal, "lines.read", key.doc_id, "not_found", request.remote)
        raise ApiError(404, "invoice_not_found",
                       "no indexed invoice of which this key is a party has this id",
                       {"id": doc_id})
    lines, why = await stored_lines(request, invoice)
    access.audit.record(principal, "lines.read", invoice.doc_id,
                        "ok" if lines is not None else why, request.remote)
    if lines is None:
        if why == "original_unavailable":
            raise ApiError(503, "original_unavailable",
                           "the originals store did not answer in time; ask again later",
                           {"id": doc_id})
        raise ApiError(404, why, "no original document with lines was kept for this invoice "
                       "(it arrived as JSON)", {"id": doc_id})
    return json_response({"id": invoice.doc_id, "lines": lines})
