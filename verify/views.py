"""Request handlers: parse the edge, call the core, answer JSON. No rule lives here."""

from __future__ import annotations

from aiohttp import web

from fallback.journaled_intake import IntakeUnavailableError
from indexer.keys import key_from_doc_id
from indexer.submission import BodyFormat, read_submission
from verify.access.middleware import PRINCIPAL
from verify.access.service import is_party
from verify.callback_url import MAX_CALLBACK_URL, validate_callback_url
from verify.http.body import read_body
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS, JOURNALED_INTAKE, ORIGINALS, SETTINGS, STORE
from verify.lookup import read_lookup
from verify.verification import verify_query

_JSON_TYPES = frozenset({"application/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
#: What a 503 from intake asks the sender to wait before posting again.
RETRY_AFTER_SECONDS = 30


async def post_package(request: web.Request) -> web.Response:
    """200 with the final notice once the primary holds the package; 202 with a queued
    notice when it is durable in the intake journal but the primary cannot take it now
    (the reconciler applies it later; re-posting answers the notice as it then stands);
    503 with Retry-After when neither can take it. Seller signatures are checked off the
    event loop (`JournaledIntake.signatures`)."""
    if request.content_type not in _JSON_TYPES | _XML_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the package as application/json or application/xml",
                       {"accepted": sorted(_JSON_TYPES | _XML_TYPES),
                        "given": request.content_type})
    settings = request.app[SETTINGS]
    principal = request[PRINCIPAL]
    body = await read_body(request, settings.max_package_bytes)
    fmt = BodyFormat.XML if request.content_type in _XML_TYPES else BodyFormat.JSON
    submission = read_submission(body, fmt, max_items=settings.max_package_items)
    package = submission.package
    if not principal.may_send_for(package.sender):
        raise ApiError(403, "sender_not_allowed",
                       "this key may only send packages for its own provider ids",
                       {"sender": package.sender, "allowed": sorted(principal.scopes)})
    intake = request.app[JOURNALED_INTAKE]
    try:
        outcome = await intake.submit(submission, await intake.signatures(submission))
    except IntakeUnavailableError as exc:
        error = ApiError(503, "intake_unavailable", "the package was not taken: the primary "
                         "index and the local intake journal are both unavailable; post it "
                         "again later", {"package_id": package.package_id, "reason": str(exc)})
        error.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        raise error from None
    result = str(outcome.notice["result"])
    outcome_name = "replayed" if outcome.replayed else result
    request.app[ACCESS].audit.record(principal, "intake", package.package_id, outcome_name,
                                     request.remote)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return json_response(outcome.notice, status=202 if outcome.queued else 200,
                         headers=headers)


async def lookup(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    query, callback = read_lookup(request.query, settings.rules, MAX_CALLBACK_URL)
    callback_url = None if callback is None else validate_callback_url(
        callback, allow_private=settings.fallback.callback_allow_private)
    return json_response(await verify_query(request, query, callback_url=callback_url))


async def original_xml(request: web.Request) -> web.Response:
    """The invoice's XML as accepted; only for admins and the invoice's parties. To anyone
    else an invoice that is not theirs answers exactly as one that does not exist (404, a
    miss spent), so this is no way to learn which invoices exist; every request spends the
    lookup budgets and is in the audit trail, as a lookup is."""
    doc_id = request.match_info["id"]
    key = key_from_doc_id(doc_id)
    if key is None:
        raise ApiError(400, "invalid_id", "not an invoice id (vn:MST:template:series:number, "
                       "cn:code:number or cn:20-digit number)", {"id": doc_id})
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    await access.admit(principal, key.doc_id)  # the invoice's day spent: parties only anyway
    invoice = await request.app[STORE].get_invoice(key.doc_id)
    if invoice is None or not is_party(principal, invoice.seller_tax_id, invoice.buyer_tax_id):
        await access.note_miss(principal, key.doc_id)
        access.audit.record(principal, "original.read", key.doc_id, "not_found",
                            request.remote)
        raise ApiError(404, "invoice_not_found", "no indexed invoice of which this key is "
                       "a party has this id", {"id": doc_id})
    body = await request.app[ORIGINALS].get(invoice.doc_id, invoice.package_id)
    outcome = "ok" if body is not None else "original_not_kept"
    access.audit.record(principal, "original.read", invoice.doc_id, outcome, request.remote)
    if body is None:
        raise ApiError(404, "original_not_kept", "this invoice arrived as JSON; no original "
                       "document was kept", {"id": doc_id})
    return web.Response(body=body, content_type="application/xml", charset="utf-8")
