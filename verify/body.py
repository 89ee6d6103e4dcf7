"""Reading request bodies within a per-route limit, counting bytes ourselves."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from verify.errors import ApiError


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body exceeds {limit} bytes for this endpoint",
                    {"limit": limit})


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes `limit` (declared or actually sent)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json",
                       {"given": request.content_type})
    try:
        data = json.loads(await read_body(request, limit))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return data
