"""A QR that a phone's own camera app can use (issue 19 item 6): a link to the desk page for
an invoice, at the service's public address (`INVOICE_PUBLIC_URL`), carrying the key and
the total and date to match. Opening it asks to sign in when needed, then shows the verdict
card. It encodes only what the caller gives (a well-formed key, checked as a lookup's is),
so it reads nothing from the index; our printed plain-text QR stays as it is
(`verify.qr.payload.our_payload`), and the scan page reads both."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from verify.http.errors import ApiError
from verify.keys import QR_POOL, SETTINGS
from verify.lookup.query import KEY_PARAMS, parse_lookup
from verify.qr import encode

LINK_PARAMS = KEY_PARAMS | {"total_amount", "issued_on"}


def link(public_url: str, params: dict[str, str]) -> str:
    return f"{public_url}/web/desk?{urlencode(params)}"


async def link_qr(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if settings.web.public_url is None:
        raise ApiError(404, "no_public_url", "link QR codes need INVOICE_PUBLIC_URL")
    params = {k: v for k, v in request.query.items() if k in LINK_PARAMS and v}
    if len(params) != len(request.query):
        raise ApiError(
            400, "invalid_parameter", "give the invoice's key, and its total and date to match"
        )
    parse_lookup(MultiDict(params), settings.rules)  # a well-formed key, or 400
    text = link(settings.web.public_url, params)
    png = await request.app[QR_POOL].run(encode.render_png, text, 320, "M")
    return web.Response(body=png, content_type="image/png")
