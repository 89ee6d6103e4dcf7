"""QR endpoints: `POST /verify/qr` (a photo), `POST /verify/qr-text` (text a scanner app
already decoded) and `GET /invoices/{id}/qr.png` (our own code for an indexed invoice).

Each code read is verified through `verify_query`, the same path as `GET /invoices/lookup`:
the same budgets, audit record, tenancy and answer. Outcomes that are not errors of the
request are answered 200 and say so: a photo with no readable code (`outcome:
"no_qr_found"`), and a code that is not an invoice QR (`error.code: "no_invoice_qr"`, with
its text). Everything wrong with the upload itself is a 4xx with its own code.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from indexer.keys import key_from_doc_id
from verify.access.middleware import PRINCIPAL
from verify.body import read_body, read_json_object, too_large
from verify.errors import ApiError
from verify.keys import ACCESS, QR_POOL, SETTINGS, STORE
from verify.qr import encode
from verify.qr.payload import CnAmount, our_payload, parse_payload
from verify.qr.pool import Busy, Scan, scan
from verify.qr.preprocess import ImageRejected
from verify.responses import json_response
from verify.verification import verify_query

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif",
                         "image/heic-sequence", "image/heif-sequence"})
PART_TYPES = IMAGE_TYPES | {"application/octet-stream", ""}
TEXT_BODY = 16 * 1024
_CHUNK = 64 * 1024


def _busy(pool_size: int) -> ApiError:
    error = ApiError(503, "qr_busy", "every QR decoding slot is in use; retry in a moment",
                     {"max_pending": pool_size, "retry_after": 1})
    error.headers = {"Retry-After": "1"}
    return error


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request: web.Request, limit: int) -> bytes:
    """The image bytes from a multipart field `image` or a raw `image/*` body, counted
    against `limit` as they arrive (the client's filename is never used)."""
    if request.content_type in IMAGE_TYPES:
        return await read_body(request, limit)
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the photo as multipart/form-data "
                       "(field `image`) or as a raw image/* body",
                       {"accepted": sorted(IMAGE_TYPES | {"multipart/form-data"}),
                        "given": request.content_type})
    if request.content_length is not None and request.content_length > limit + _CHUNK:
        raise too_large(limit)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_multipart", "nested multipart bodies are not accepted")
        if part.name != "image":
            await _read_part(part, limit)  # counted and dropped: other fields are ignored
            continue
        given = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if given not in PART_TYPES:
            raise ApiError(415, "unsupported_media_type", "the `image` part must be an image",
                           {"accepted": sorted(IMAGE_TYPES), "given": given})
        return await _read_part(part, limit)
    raise ApiError(400, "missing_image", "the multipart body has no `image` field")


async def _code_answer(request: web.Request, text: str, *,
                       rate_errors_inline: bool) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    parsed = parse_payload(text, settings.rules, CnAmount(settings.qr.cn_amount))
    if parsed.query is None:
        return {"payload": parsed.payload, "result": None, "error": parsed.error}
    try:
        result = await verify_query(request, parsed.query)
    except ApiError as exc:
        if not (rate_errors_inline and exc.status == 429):
            raise
        return {"payload": parsed.payload, "result": None, "error": exc.body()["error"]}
    return {"payload": parsed.payload, "result": result, "error": None}


async def verify_photo(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    pool = request.app[QR_POOL]
    try:
        with pool.slot():
            data = await _upload(request, settings.qr.max_upload_bytes)
            if not data:
                raise ApiError(400, "empty_image", "the image is empty")
            found: Scan = await pool.run(scan, data, pool.pipeline, settings.qr.max_pixels)
    except Busy:
        raise _busy(pool.max_pending) from None
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    codes = []
    for code in found.codes:
        entry = await _code_answer(request, code.text, rate_errors_inline=True)
        x, y, w, h = code.box
        entry["position"] = {"x": x, "y": y, "width": w, "height": h}
        codes.append(entry)
    return json_response({
        "outcome": "decoded" if codes else "no_qr_found",
        "codes": codes,
        "image": {"width": found.width, "height": found.height, "format": found.format,
                  "decoder": found.stage, "attempts": found.attempts,
                  "decode_ms": round(found.seconds * 1000, 1)},
    })


async def verify_text(request: web.Request) -> web.Response:
    body = await read_json_object(request, TEXT_BODY)
    unknown = sorted(set(body) - {"payload"})
    if unknown:
        raise ApiError(400, "unknown_parameter", "unknown field(s)", {"fields": unknown,
                                                                      "allowed": ["payload"]})
    text = body.get("payload")
    if not isinstance(text, str):
        raise ApiError(422, "invalid_body", "`payload` must be the QR text, a string")
    return json_response(await _code_answer(request, text, rate_errors_inline=False))


def _png_params(request: web.Request) -> tuple[int, str]:
    query = request.query
    unknown = sorted(set(query) - {"size", "ec"})
    if unknown:
        raise ApiError(400, "unknown_parameter", "unknown query parameter(s)",
                       {"parameters": unknown, "allowed": ["ec", "size"]})
    raw_size = query.get("size", str(encode.DEFAULT_SIZE))
    if not raw_size.isdigit() or not encode.MIN_SIZE <= int(raw_size) <= encode.MAX_SIZE:
        raise ApiError(400, "invalid_parameter", f"size must be {encode.MIN_SIZE}-"
                       f"{encode.MAX_SIZE} pixels", {"parameter": "size"})
    ec = query.get("ec", encode.DEFAULT_EC).upper()
    if ec not in encode.EC_LEVELS:
        raise ApiError(400, "invalid_parameter", "ec must be L, M, Q or H",
                       {"parameter": "ec"})
    return int(raw_size), ec


async def invoice_qr_png(request: web.Request) -> web.Response:
    """Spends the lookup budget and is audited like a lookup: a 200 here tells the caller
    that the invoice exists, which is what a verification tells."""
    doc_id = request.match_info["id"]
    size, ec = _png_params(request)
    key = key_from_doc_id(doc_id)
    if key is None:
        raise ApiError(400, "invalid_id", "not an invoice id (vn:MST:template:series:number, "
                       "cn:code:number or cn:20-digit number)", {"id": doc_id})
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    await access.spend_lookup_budget(principal, key.doc_id)
    invoice = await request.app[STORE].get_invoice(key.doc_id)
    if invoice is None:
        await access.note_miss(principal)
        access.audit.record(principal, "qr.render", key.doc_id, "not_found", request.remote)
        raise ApiError(404, "invoice_not_found", "no indexed invoice has this id",
                       {"id": doc_id})
    text = our_payload(invoice.key, invoice.amounts.total, invoice.issued_at.date())
    png = await request.app[QR_POOL].run(encode.render_png, text, size, ec)
    access.audit.record(principal, "qr.render", invoice.doc_id, "ok", request.remote)
    return web.Response(body=png, content_type="image/png")
