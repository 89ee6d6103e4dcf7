"""QR endpoints: `POST /verify/qr` (a photo), `POST /verify/qr-text` (text a scanner app
already decoded) and `GET /invoices/{id}/qr.png` (our own code for an indexed invoice).

Each code read is verified through `verify_query`, the same path as `GET /invoices/lookup`:
the same budgets, audit record, tenancy and answer. Outcomes that are not errors of the
request are answered 200 and say so: a photo with no readable code (`outcome:
"no_qr_found"`), and a code that is not an invoice QR (`error.code: "no_invoice_qr"`, with
its text). Everything wrong with the upload itself is a 4xx with its own code.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from verify.access.middleware import PRINCIPAL
from verify.http.body import read_body, read_form_field, read_json_object
from verify.http.errors import ApiError
from verify.http.params import invalid, read_query
from verify.http.responses import json_response
from verify.keys import ACCESS, QR_POOL, SETTINGS, STORE
from verify.lookup.query import path_key
from verify.lookup.verification import verify_query
from verify.qr import encode
from verify.qr.payload import CnAmount, our_payload, parse_payload
from verify.qr.pool import Busy, Scan, scan
from verify.qr.preprocess import ImageRejected
from verify.receipts.flag import receipt_only
from verify.receipts.views import require_receipts

IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/heic-sequence",
        "image/heif-sequence",
    }
)
PART_TYPES = IMAGE_TYPES | {"application/octet-stream", ""}
TEXT_BODY = 16 * 1024
log = logging.getLogger("verify.qr")


def _busy(pool_size: int) -> ApiError:
    error = ApiError(
        503,
        "qr_busy",
        "every QR decoding slot is in use; retry in a moment",
        {"max_pending": pool_size, "retry_after": 1},
    )
    error.headers = {"Retry-After": "1"}
    return error


def _check_part_type(given: str) -> None:
    if given not in PART_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the `image` part must be an image",
            {"accepted": sorted(IMAGE_TYPES), "given": given},
        )


async def _upload(request: web.Request, limit: int) -> bytes:
    """The image bytes from a multipart field `image` or a raw `image/*` body, counted
    against `limit` as they arrive (verify/http/body.py: size, time and framing bounds)."""
    if request.content_type in IMAGE_TYPES:
        return await read_body(request, limit)
    if request.content_type != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the photo as multipart/form-data (field `image`) or as a raw image/* body",
            {
                "accepted": sorted(IMAGE_TYPES | {"multipart/form-data"}),
                "given": request.content_type,
            },
        )
    field = await read_form_field(request, "image", limit, check_type=_check_part_type)
    return field.data


async def _code_answer(
    request: web.Request, text: str, *, inline_errors: bool, receipt: bool = False
) -> dict[str, Any]:
    """One code's entry. `inline_errors` (a photo): whatever goes wrong with this code, its
    own 4xx or an unexpected failure (logged), is this entry's `error`, and the photo's other
    codes are still answered."""
    settings = request.app[SETTINGS]
    try:
        parsed = parse_payload(text, settings.rules, CnAmount(settings.qr.cn_amount))
        if parsed.query is None:
            return {"payload": parsed.payload, "result": None, "error": parsed.error}
        return {
            "payload": parsed.payload,
            "result": await verify_query(request, parsed.query, receipt=receipt),
            "error": None,
        }
    except ApiError as exc:
        if not inline_errors:
            raise
        return {
            "payload": {"format": None, "raw": text},
            "result": None,
            "error": exc.body()["error"],
        }
    except Exception:
        if not inline_errors:
            raise
        log.exception("a QR code of a photo could not be answered", extra={"path": request.path})
        return {
            "payload": {"format": None, "raw": text},
            "result": None,
            "error": {
                "code": "code_failed",
                "message": "this code could not be checked; the failure was logged",
                "details": {},
            },
        }


async def verify_photo(request: web.Request, *, receipt: bool = False) -> web.Response:
    """The body is read in full (within its size and time bounds) before a decode slot is
    taken, so slow uploads hold no slot and cannot keep others' photos from being decoded.
    `receipt`: each code's answer carries its receipt unasked (the scan page)."""
    settings = request.app[SETTINGS]
    pool = request.app[QR_POOL]
    receipt = _receipt_asked(request) or receipt
    data = await _upload(request, settings.qr.max_upload_bytes)
    if not data:
        raise ApiError(400, "empty_image", "the image is empty")
    try:
        with pool.slot():
            found: Scan = await pool.run(
                scan, data, pool.pipeline, settings.qr.max_pixels, settings.qr.max_decoded_bytes
            )
    except Busy:
        raise _busy(pool.max_pending) from None
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    codes = []
    for code in found.codes:
        entry = await _code_answer(request, code.text, inline_errors=True, receipt=receipt)
        x, y, w, h = code.box
        entry["position"] = {"x": x, "y": y, "width": w, "height": h}
        codes.append(entry)
    return json_response(
        {
            "outcome": "decoded" if codes else "no_qr_found",
            "codes": codes,
            "image": {
                "width": found.width,
                "height": found.height,
                "format": found.format,
                "decoder": found.stage,
                "attempts": found.attempts,
                "decode_ms": round(found.seconds * 1000, 1),
            },
        }
    )


async def verify_text(request: web.Request, *, receipt: bool = False) -> web.Response:
    receipt = _receipt_asked(request) or receipt
    body = await read_json_object(request, TEXT_BODY)
    unknown = sorted(set(body) - {"payload"})
    if unknown:
        raise ApiError(
            400,
            "unknown_parameter",
            "unknown field(s)",
            {"fields": unknown, "allowed": ["payload"]},
        )
    text = body.get("payload")
    if not isinstance(text, str):
        raise ApiError(422, "invalid_body", "`payload` must be the QR text, a string")
    return json_response(await _code_answer(request, text, inline_errors=False, receipt=receipt))


def _receipt_asked(request: web.Request) -> bool:
    """`?receipt=true` (docs/receipts.md): each code's answer carries its receipt."""
    receipt = receipt_only(request.query)
    if receipt:
        require_receipts(request)
    return receipt


def _png_params(request: web.Request) -> tuple[int, str]:
    q = read_query(request.query, ("size", "ec"))  # unknown or repeated names: 400
    size = q.integer("size", low=encode.MIN_SIZE, high=encode.MAX_SIZE, default=encode.DEFAULT_SIZE)
    ec = (q.raw("ec") or encode.DEFAULT_EC).upper()
    if ec not in encode.EC_LEVELS:
        raise invalid("ec", "ec must be L, M, Q or H")
    return size, ec


async def invoice_qr_png(request: web.Request) -> web.Response:
    """Spends the lookup budget and is audited like a lookup: a 200 here tells the caller
    that the invoice exists, which is what a verification tells."""
    doc_id = request.match_info["id"]
    size, ec = _png_params(request)
    key = path_key(doc_id)
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    admission = await access.admit(principal, key.doc_id)
    invoice = await request.app[STORE].get_invoice(key.doc_id)
    await access.settle(principal, admission, invoice)  # its parties are never locked out
    if invoice is None:
        await access.note_miss(principal)
        access.audit.record(principal, "qr.render", key.doc_id, "not_found", request.remote)
        raise ApiError(404, "invoice_not_found", "no indexed invoice has this id", {"id": doc_id})
    text = our_payload(invoice.key, invoice.amounts.total, invoice.issued_at.date())
    png = await request.app[QR_POOL].run(encode.render_png, text, size, ec)
    access.audit.record(principal, "qr.render", invoice.doc_id, "ok", request.remote)
    return web.Response(body=png, content_type="image/png")
