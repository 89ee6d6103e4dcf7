"""The receipts' routes: `GET /.well-known/jwks.json` (the public keys, no key needed),
`POST /receipts/verify` (is this receipt ours and unchanged?) and `POST /receipts/pdf` (the
receipt as one page for people), and `with_receipt`, which every answer exit calls to sign
the answer it sends (`verify.lookup.verification.verify_query`: lookups, QR codes, batch
rows; ledger lines through the same function).

A receipt is any caller's to check: it holds only what its answer showed, so checking one
shows nothing its holder cannot already read in it. Both routes spend one token of the
key's budget (the middleware's) and are in the audit trail: `receipt.sign` (target: the
invoice, or the key asked; outcome: the receipt's id), `receipt.verify` and `receipt.pdf`
(target: the receipt's id when it has one; outcome: `valid`, or why not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from indexer.model import Invoice
from verify.access.middleware import PRINCIPAL
from verify.access.service import too_many
from verify.http.body import read_body, read_json_object
from verify.http.errors import ApiError
from verify.http.responses import SECURITY_HEADERS, json_response
from verify.keys import ACCESS
from verify.receipts.claims import statement
from verify.receipts.pdf import render_pdf
from verify.receipts.signing import MAX_RECEIPT, ReceiptInvalid, Verified
from verify.receipts.state import RECEIPTS, refresh_for

JOSE = "application/jose"  # the compact JWS media type (RFC 7515 section 9.2.1)
#: A saved answer with its receipt is a few kilobytes.
_BODY_LIMIT = 64 * 1024


def unavailable() -> ApiError:
    error = ApiError(
        503,
        "receipts_unavailable",
        "the receipt keys cannot be read now "
        "(their shared store is down); answers without a receipt still work",
        {"retry_after": 30},
    )
    error.headers = {"Retry-After": "30"}
    return error


def require_receipts(request: web.Request) -> None:
    """Before a lookup that asked for a receipt: refused at once (503) when none can be
    signed, rather than after its budget is spent."""
    if not request.app[RECEIPTS].ready:
        raise unavailable()


async def with_receipt(
    request: web.Request, answer: dict[str, Any], invoice: Invoice | None, target: str | None
) -> dict[str, Any]:
    """`answer` as sent to the caller, with the receipt of exactly that answer. Each receipt
    spends one of the key's receipts of the hour (`INVOICE_RATE_RECEIPTS_PER_HOUR`, the
    hour's worth as a burst): none left, 429 `receipt_rate_limited` (a batch row or ledger
    line: that row's error), recorded in the audit trail as `receipt.sign` refused."""
    principal = request[PRINCIPAL]
    receipts = request.app[RECEIPTS]
    if not receipts.ready:
        raise unavailable()
    access = request.app[ACCESS]
    hourly = access.limits.receipts_per_hour
    wait = await access.limiter.take(f"receipt:{principal.key_id}", hourly, hourly / 3600)
    if wait:
        access.audit.record(principal, "receipt.sign", target, "rate_limited", request.remote)
        raise too_many("receipt_rate_limited", "this key has signed its receipts of the hour "
                       "(INVOICE_RATE_RECEIPTS_PER_HOUR)", wait)
    token, receipt_id = await receipts.sign_soon(answer, invoice, principal.key_id)
    access.audit.record(principal, "receipt.sign", target, receipt_id, request.remote)
    return {**answer, "receipt": token}


async def jwks(request: web.Request) -> web.Response:
    keys = request.app[RECEIPTS].keys
    if keys is None:
        raise unavailable()
    return json_response(keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


async def _token(request: web.Request) -> str:
    """The receipt from an `application/jose` body (the JWS itself) or a JSON object with
    `receipt`: `{"receipt": "..."}`, or a whole answer as it was saved (its other fields are
    not read)."""
    if request.content_type == JOSE:
        raw = await read_body(request, _BODY_LIMIT)
        try:
            return raw.decode("ascii").strip()  # a file's final newline is not the JWS's
        except UnicodeDecodeError:
            raise ApiError(422, "invalid_body", "a compact JWS is ASCII") from None
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send application/json or {JOSE}",
            {"given": request.content_type},
        )
    token = (await read_json_object(request, _BODY_LIMIT)).get("receipt")
    if not isinstance(token, str) or not token or len(token) > MAX_RECEIPT:
        raise ApiError(
            422,
            "invalid_body",
            "`receipt` must be the receipt (a compact JWS)",
            {"field": "receipt"},
        )
    return token


async def _check(request: web.Request, token: str, action: str) -> Verified:
    """The receipt verified, or `ReceiptInvalid`; audited either way."""
    receipts = request.app[RECEIPTS]
    if not receipts.ready:
        raise unavailable()
    if not receipts.knows(token):  # a key rotated by another process since our last look
        await refresh_for(request.app)
    principal, audit = request[PRINCIPAL], request.app[ACCESS].audit
    try:
        verified = receipts.check(token)
    except ReceiptInvalid as exc:
        audit.record(principal, action, None, exc.code, request.remote)
        raise
    audit.record(principal, action, _text(verified.claims.get("jti")), "valid", request.remote)
    return verified


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _answer(verified: Verified) -> dict[str, Any]:
    return {
        "valid": True,
        "kid": verified.kid,
        "statement": statement(verified.claims),
        "claims": verified.claims,
    }


async def verify_receipt(request: web.Request) -> web.Response:
    """200 either way: `valid` true with the signed facts, or false with why not."""
    token = await _token(request)
    try:
        verified = await _check(request, token, "receipt.verify")
    except ReceiptInvalid as exc:
        return json_response({"valid": False, "error": {"code": exc.code, "message": exc.message}})
    return json_response(_answer(verified))


async def receipt_pdf(request: web.Request) -> web.Response:
    return await pdf_response(request, await _token(request))


async def pdf_response(request: web.Request, token: str) -> web.Response:
    """The receipt's one-page PDF, as a download; 422 `invalid_receipt` unless it verifies
    (the API's route, and the web pages' download: `verify.web.receipt_views`)."""
    try:
        verified = await _check(request, token, "receipt.pdf")
    except ReceiptInvalid as exc:
        raise ApiError(
            422,
            "invalid_receipt",
            f"only a receipt that verifies is drawn: {exc.message}",
            {"reason": exc.code},
        ) from None
    pdf = await asyncio.to_thread(render_pdf, token, verified.claims, verified.kid)
    name = _filename(verified.claims)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


def _filename(claims: Mapping[str, Any]) -> str:
    jti = _text(claims.get("jti")) or str(int(time.time()))
    safe = "".join(c for c in jti if c.isascii() and (c.isalnum() or c in "-_"))
    return f"receipt-{safe or 'unnamed'}.pdf"
