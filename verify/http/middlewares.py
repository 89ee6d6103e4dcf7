"""Every failure leaves as `{"error": {"code", "message", "details"}}`, translated here once.

This is the one place an exception becomes an answer: domain errors (`ApiError`
and its `QueryError`, `PackageError`) with their own status, a store that cannot answer now
(`StoreUnavailableError`, whatever the backend) as 503, aiohttp's HTTP exceptions with theirs,
aiohttp's own refusals of a malformed request (a bad header, a multipart body without a
boundary or with garbage part headers) as 400, and anything else as a logged 500 that names
nothing of the request's content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from indexer.package import PackageError
from indexer.store.protocol import StoreUnavailableError
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import SERVICES

log = logging.getLogger("verify.errors")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found_route",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}
#: aiohttp's multipart reader raises ValueError, RuntimeError, TypeError and AssertionError
#: for what a client sent (no boundary, a wrong boundary, an unknown transfer encoding).
_MULTIPART_SOURCE = str(Path(aiohttp.__file__).with_name("multipart.py"))


def _respond(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), status=error.status, headers=headers)


def _raised_in_multipart(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc` is aiohttp's multipart reader."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == _MULTIPART_SOURCE


def _malformed(exc: Exception) -> ApiError | None:
    """aiohttp's own refusal of a malformed request, as the 4xx it means; None otherwise."""
    if isinstance(exc, HttpProcessingError):
        status = exc.code if 400 <= exc.code < 500 else 400
        return ApiError(status, _HTTP_CODES.get(status, f"http_{status}"),
                        "the request is malformed", {"reason": exc.message})
    if _raised_in_multipart(exc):
        return ApiError(400, "bad_multipart", "the multipart body cannot be read",
                        {"reason": str(exc)[:200]})
    return None


#: What runs inside the error middleware's own layer (`around`): the rest of the chain.
Inner = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def around(inner: Inner) -> Middleware:
    """The outermost middleware, which also counts every answer in the request metrics,
    with `inner` run inside its own layer: the service passes the access checks
    (`verify.access.middleware.guard`), so a lookup goes through one middleware of ours
    instead of two (each layer is a coroutine and a wrapper aiohttp calls per request)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # a streamed answer that failed midway, or a cancelled request
        try:
            try:
                response = await inner(request, handler)
            except Exception as exc:
                response = _failed(request, exc)
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect, raised on to aiohttp
            status = exc.status
            raise
        finally:
            _observe(request, status, time.perf_counter() - started)

    return errors


async def _handler_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)


#: The error middleware alone, in front of the handler (apps without access checks: tests).
error_middleware = around(_handler_only)


def _failed(request: web.Request, exc: Exception) -> web.Response:
    if request.writer.output_size > 0:
        # A streamed answer (NDJSON, a report) has begun: a second answer would be
        # written into its body. Logged, and aiohttp closes the connection.
        log.exception("failed after its answer began; the connection is closed",
                      extra={"path": request.path, "method": request.method})
        raise exc
    return _answer(request, exc)


def route_template(request: web.Request) -> str:
    """The route's template (`/api/v1/gaps/{id}`), never the path itself (one series per
    route, whatever ids are asked): `/web/*` for the pages, `unmatched` for any other 404."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    return "/web/*" if request.path.startswith("/web/") else "unmatched"


def _observe(request: web.Request, status: int, seconds: float) -> None:
    services = request.app.get(SERVICES)
    if services is not None:  # before the app's start nothing is served
        services.metrics.observe_request(route_template(request), request.method, status,
                                         seconds)


def _answer(request: web.Request, exc: Exception) -> web.Response:
    """The JSON error answer for `exc` (re-raised only for an HTTP redirect)."""
    if isinstance(exc, ApiError):
        return _respond(exc, exc.headers)
    if isinstance(exc, PackageError):
        return _respond(ApiError(exc.status, exc.code, exc.message, exc.details))
    if isinstance(exc, StoreUnavailableError):
        log.warning("the index could not answer: %s", type(exc).__name__,
                    extra={"path": request.path, "method": request.method})
        return _respond(ApiError(503, "primary_unavailable",
                                 "the index cannot answer now; try again"))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _respond(ApiError(exc.status, code, exc.reason), headers)
    malformed = _malformed(exc)
    if malformed is not None:
        return _respond(malformed)
    log.exception("unhandled error", extra={"path": request.path, "method": request.method},
                  exc_info=exc)
    return _respond(ApiError(500, "internal_error", "unexpected server error; it was logged"))
