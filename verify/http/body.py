"""Reading request bodies: the one place a body is read, so every route gets the same bounds.

- Size: a per-route limit in bytes, counted as the bytes arrive (a declared Content-Length
  is checked first, a chunked body is counted chunk by chunk), 413 `body_too_large`. In a
  multipart body every part counts toward the one limit, so many fields cannot add up past it.
- Time: the whole body must arrive within `INVOICE_BODY_READ_TIMEOUT_S` (408
  `body_timeout`), so a client sending a byte a second holds a connection for that long at
  most, and holds no decode slot or other shared resource meanwhile (callers take those only
  after the body is read).
- Framing: a multipart body without a boundary, with garbage part headers or lines past
  aiohttp's bounds is a 400 `bad_multipart`, never an exception escaping as a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from verify.http.errors import ApiError
from verify.keys import SETTINGS

_CHUNK = 64 * 1024


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body exceeds {limit} bytes for this endpoint",
                    {"limit": limit})


def bad_multipart(reason: str) -> ApiError:
    return ApiError(400, "bad_multipart", "the multipart body cannot be read",
                    {"reason": reason[:200]})


@contextlib.asynccontextmanager
async def reading(request: web.Request) -> AsyncIterator[None]:
    """The body read within the configured deadline (408), its framing errors as 400."""
    seconds = request.app[SETTINGS].body_read_timeout_s
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {seconds} s",
                       {"timeout_s": seconds}) from None
    except (ValueError, HttpProcessingError) as exc:  # aiohttp's multipart and chunk parsers
        raise bad_multipart(f"{type(exc).__name__}: {exc}") from None
    except ConnectionResetError:  # the client left mid-body: nobody reads this answer
        raise ApiError(400, "body_incomplete", "the connection closed before the body "
                       "arrived in full") from None


class _Counter:
    """Bytes read so far against one limit, across every part of a body."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)


async def read_body(request: web.Request, limit: int, *,
                    inspect: Callable[[bytes], None] | None = None) -> bytes:
    """The whole body, or 413 as soon as it passes `limit` (declared or actually sent), 408
    when it does not arrive in time. `inspect` sees each chunk as it arrives and may refuse
    the body by raising (a batch counts its lines so), before the rest is read."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    counter = _Counter(limit)
    chunks: list[bytes] = []
    async with reading(request):
        async for chunk in request.content.iter_chunked(_CHUNK):
            counter.add(chunk)
            if inspect is not None:
                inspect(chunk)
            chunks.append(chunk)
    return b"".join(chunks)


async def _read_part(part: BodyPartReader, counter: _Counter, *, keep: bool) -> bytes:
    chunks: list[bytes] = []
    while chunk := await part.read_chunk(_CHUNK):
        counter.add(chunk)
        if keep:
            chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class FormField:
    data: bytes
    content_type: str  # the part's media type, lower case, without parameters


async def read_form_field(request: web.Request, name: str, limit: int, *,
                          check_type: Callable[[str], None] | None = None) -> FormField:
    """The multipart field `name`; other fields are read, counted toward `limit` and dropped
    (a client's file name is never used). `check_type` may refuse the part's media type
    before its bytes are read. 400 `missing_<name>` when no part has that name."""
    # A declared length may exceed the payload by the parts' headers and boundaries.
    if request.content_length is not None and request.content_length > limit + _CHUNK:
        raise too_large(limit)
    counter = _Counter(limit)
    async with reading(request):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "bad_multipart", "nested multipart bodies are not accepted")
            if part.name != name:
                await _read_part(part, counter, keep=False)
                continue
            given = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if check_type is not None:
                check_type(given)
            return FormField(await _read_part(part, counter, keep=True), given)
    raise ApiError(400, f"missing_{name}", f"the multipart body has no `{name}` field")


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
