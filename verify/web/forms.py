"""Form bodies of the pages, read within bounds: URL-encoded forms, and multipart forms with
small text fields and at most one file (counted across every part against one limit; the
client's file name is never used). Read once, before the page runs (the CSRF token is one
of the fields), and kept on the request under `FORM`."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from verify.http.body import read_body, reading, too_large
from verify.http.errors import ApiError

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = frozenset({URLENCODED, MULTIPART})
#: Text fields a form may have, and the length of each.
MAX_FIELDS = 30
MAX_FIELD = 4096
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    content_type: str


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.fields.get(name, "").strip()


FORM = web.RequestKey("web_form", Form)


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_form", message)


async def _urlencoded(request: web.Request, limit: int) -> Form:
    body = await read_body(request, min(limit, MAX_FIELDS * MAX_FIELD))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _bad("the form cannot be read") from None
    return Form(fields={k: v[:MAX_FIELD] for k, v in pairs})


async def _multipart(request: web.Request, limit: int) -> Form:
    if request.content_length is not None and request.content_length > limit + _CHUNK:
        raise too_large(limit)
    form, size = Form(), 0
    async with reading(request):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise _bad("nested or unnamed multipart parts are not accepted")
            is_file = part.filename is not None
            if not is_file and len(form.fields) >= MAX_FIELDS:
                raise _bad("too many form fields")
            if is_file and form.files:
                raise _bad("one file per form")
            cap = limit if is_file else MAX_FIELD
            chunks: list[bytes] = []
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > limit or sum(map(len, chunks)) + len(chunk) > cap:
                    raise too_large(limit)
                chunks.append(chunk)
            data = b"".join(chunks)
            if is_file:
                kind = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
                form.files[part.name] = Upload(data, kind)
            else:
                try:
                    form.fields[part.name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise _bad("form fields must be UTF-8") from None
    return form


async def read_form(request: web.Request, limit: int) -> Form:
    if request.content_type == MULTIPART:
        return await _multipart(request, limit)
    return await _urlencoded(request, limit)
