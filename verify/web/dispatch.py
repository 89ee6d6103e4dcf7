"""How a request reaches a page: the pages' own table (`verify.web.pages.pages`), served
from a middleware on the service's app, ahead of the API's router answering 404.

Pages are not API routes: they are not in `/openapi.json`, and they authenticate with the
session instead of a bearer header. Each page names the API route whose engine it calls;
that route's roles (`verify.access.roles.ROUTE_ACCESS`) decide who sees the page, and its
budget rule (`verify.access.middleware.BUDGET_IN_HANDLER`) how the key's budget is spent,
so a page admits, limits and records exactly what the API would. Fails closed: a path not
in the table is a 404, and every page other than sign-in, the language switch and the
static files needs a signed-in key.

Every POST carries the session's CSRF token (form field `csrf`, or header `X-CSRF-Token`
for the pages' scripts); the session cookie is also SameSite=Strict.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from verify.access.middleware import (
    BUDGET_IN_HANDLER,
    BUDGET_PER_LOOKUP,
    KEY_BUDGET_DUE,
    KEY_BUDGET_EACH,
    PRINCIPAL,
)
from verify.access.roles import Principal, admits
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS
from verify.web.forms import FORM, FORM_TYPES, read_form
from verify.web.render import page
from verify.web.security import secure
from verify.web.session import CSRF, SESSION, session_of, signed_in
from verify.web.state import WEB

PREFIX = "/web/"
log = logging.getLogger("verify.web")
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Page:
    handler: PageHandler
    #: The API route this page stands for: its roles see the page, its budget rule applies.
    #: None: open to anyone (sign-in, the language switch, static files).
    api: str | None
    methods: frozenset[str] = frozenset({"GET"})
    #: Bytes a form posted to this page may have.
    form_limit: int = 64 * 1024
    #: Answers (and errors) as JSON, for the pages' scripts.
    json: bool = False
    #: A page for any signed-in key, whatever its role (home, sign-out).
    any_role: bool = False


def _next(request: web.Request) -> str:
    return "/web/sign-in?next=" + quote(request.path_qs, safe="")


async def _error(request: web.Request, page_: Page, error: ApiError) -> web.StreamResponse:
    if page_.json:
        return json_response(error.body(), status=error.status, headers=error.headers)
    response = await page(request, "error.html", {"error": error}, status=error.status)
    response.headers.update(error.headers)
    return response


async def _check_csrf(request: web.Request, page_: Page) -> None:
    given = request.headers.get("X-CSRF-Token")
    if request.content_type in FORM_TYPES:
        form = request[FORM] = await read_form(request, page_.form_limit)
        given = given or form.fields.get("csrf")
    expected = (await session_of(request)).get(CSRF)
    if not (
        isinstance(expected, str)
        and given
        and hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise ApiError(
            403,
            "csrf_refused",
            "this form is out of date or did not come from "
            "this site; open the page again and resend it",
        )


async def _spend_and_run(
    request: web.Request, page_: Page, principal: Principal
) -> web.StreamResponse:
    """The key's budget as the API's middleware spends it for `page_.api`."""
    access = request.app[ACCESS]
    if page_.api not in BUDGET_IN_HANDLER:
        await access.spend_key_budget(principal)
        return await page_.handler(request)
    request[KEY_BUDGET_DUE] = True
    request[KEY_BUDGET_EACH] = page_.api in BUDGET_PER_LOOKUP
    if request[KEY_BUDGET_EACH]:
        await access.spend_key_budget(principal, peek=True)
    try:
        return await page_.handler(request)
    finally:
        if request[KEY_BUDGET_DUE]:
            request[KEY_BUDGET_DUE] = False
            await access.spend_key_budget(principal)


async def _serve(request: web.Request, page_: Page) -> web.StreamResponse:
    try:
        if page_.api is None and not page_.any_role:
            if request.method == "POST":
                await _check_csrf(request, page_)
            return await page_.handler(request)
        principal = await signed_in(request)
        if principal is None:
            if request.method in ("GET", "HEAD") and not page_.json:
                raise web.HTTPSeeOther(_next(request))
            raise ApiError(401, "signed_out", "sign in again: the session has ended")
        request[PRINCIPAL] = principal
        if page_.api is not None and not admits(page_.api, principal):
            raise ApiError(
                403,
                "forbidden",
                f"the {principal.role.value} role may not use this page",
                {"role": principal.role.value},
            )
        if request.method == "POST":
            await _check_csrf(request, page_)
        return await _spend_and_run(request, page_, principal)
    except ApiError as exc:
        return await _error(request, page_, exc)


async def _finish(
    request: web.Request, response: web.StreamResponse, before: dict[str, object]
) -> None:
    """The session's cookie when the page changed it, and the page headers."""
    session = request[SESSION]
    if dict(session) != before and not response.prepared:
        await request.app[WEB].sessions.save_session(request, response, session)
    secure(response)


def pages_middleware(
    pages: dict[str, Page], not_found: Page, not_allowed: Page
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def serve_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/" or path == "/web":
            raise web.HTTPSeeOther(PREFIX)
        if not path.startswith(PREFIX):
            return await handler(request)
        page_ = pages.get(path) or pages.get(path.rsplit("/", 1)[0] + "/*")
        method = "GET" if request.method == "HEAD" else request.method
        if page_ is None:
            page_ = not_found
        elif method not in page_.methods:
            page_ = not_allowed
        session = request[SESSION] = await request.app[WEB].sessions.load_session(request)
        before = dict(session)
        try:
            response = await _serve(request, page_)
        except web.HTTPException as exc:  # a redirect: it carries the session too
            await _finish(request, exc, before)
            raise
        await _finish(request, response, before)
        return response

    return serve_pages
