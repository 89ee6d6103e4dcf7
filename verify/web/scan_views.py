"""The scan page (phone first) and what its script calls: a code the browser read itself
(`/web/scan/text`, the engine of `POST /api/v1/verify/qr-text`) or a camera frame or photo
it could not (`/web/scan/photo`, the engine of `POST /api/v1/verify/qr`). Both answer the
API's JSON with each code's verdict card rendered by the same template as the desk's. As on
the desk, each answer comes with its signed receipt when one can be signed, and its card
offers it as a PDF download (`verify.web.receipt_views`)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web

from verify.http.responses import json_response
from verify.qr import views as qr_views
from verify.receipts.state import RECEIPTS
from verify.web.render import page, translator
from verify.web.session import csrf_token
from verify.web.verdict import card


async def scan(request: web.Request) -> web.StreamResponse:
    return await page(request, "scan.html")


async def _with_cards(
    request: web.Request, answer: dict[str, Any], codes: list[dict[str, Any]]
) -> web.Response:
    t = await translator(request)
    for code in codes:
        result = code.get("result")
        context = {
            "t": t,
            "verdict": card(result) if result else None,
            "code_error": code.get("error"),
            "csrf": await csrf_token(request),
        }
        code["card_html"] = aiohttp_jinja2.render_string("_verdict.html", request, context)
    return json_response(answer)


async def scan_photo(request: web.Request) -> web.StreamResponse:
    response = await qr_views.verify_photo(request, receipt=request.app[RECEIPTS].ready)
    assert isinstance(response.body, bytes)
    answer = orjson.loads(response.body)
    return await _with_cards(request, answer, answer["codes"])


async def scan_text(request: web.Request) -> web.StreamResponse:
    response = await qr_views.verify_text(request, receipt=request.app[RECEIPTS].ready)
    assert isinstance(response.body, bytes)
    answer = orjson.loads(response.body)
    return await _with_cards(request, answer, [answer])
