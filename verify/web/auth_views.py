"""Sign-in, sign-out, the home page and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.web import i18n
from verify.web.forms import FORM
from verify.web.render import menu_for, page
from verify.web.session import LANG, session_of, sign_in, sign_out, signed_in


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if not target:
        return "/web/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/web/")
        or "\\" in target
        or target.startswith("//")
    ):
        return "/web/"
    return target


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":
        form = request[FORM]
        token = form.get("api_key")
        target = safe_next(form.get("next"))
        if not token:
            return await page(request, "sign_in.html", {"next": target, "failed": True}, status=400)
        try:
            await sign_in(request, token)
        except ApiError as exc:
            if exc.status != 401:
                raise
            return await page(request, "sign_in.html", {"next": target, "failed": True}, status=401)
        raise web.HTTPSeeOther(target)
    target = safe_next(request.query.get("next"))
    if await signed_in(request) is not None:
        raise web.HTTPSeeOther(target)
    return await page(request, "sign_in.html", {"next": target, "failed": False})


async def sign_out_page(request: web.Request) -> web.StreamResponse:
    await sign_out(request)
    raise web.HTTPSeeOther("/web/sign-in")


async def home(request: web.Request) -> web.StreamResponse:
    items = menu_for(request[PRINCIPAL])
    return await page(request, "home.html", {"items": items})


async def switch_language(request: web.Request) -> web.StreamResponse:
    form = request[FORM]
    lang = form.get("lang")
    if lang in i18n.LANGUAGES:
        (await session_of(request))[LANG] = lang
    raise web.HTTPSeeOther(safe_next(form.get("next")))


async def not_found(request: web.Request) -> web.StreamResponse:
    raise ApiError(404, "page_not_found", "there is no such page")


async def not_allowed(request: web.Request) -> web.StreamResponse:
    raise ApiError(405, "method_not_allowed", "this page does not take that method")
