"""Every failure leaves as `{"error": {"code", "message", "details"}}`, translated here once."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from indexer.package import PackageError
from verify.errors import ApiError
from verify.responses import json_response

log = logging.getLogger("verify.errors")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found_route",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _respond(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _respond(exc, exc.headers)
    except PackageError as exc:
        return _respond(ApiError(exc.status, exc.code, exc.message, exc.details))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _respond(ApiError(exc.status, code, exc.reason), headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return _respond(ApiError(500, "internal_error", "unexpected server error; it was logged"))
