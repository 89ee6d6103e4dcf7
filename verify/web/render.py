"""Rendering a page: the template with what every page shows (language, menu by role,
CSRF token, the signed-in key)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from verify.access.middleware import PRINCIPAL
from verify.access.roles import Principal, admits
from verify.keys import SETTINGS
from verify.web import i18n
from verify.web.session import LANG, csrf_token, session_of
from verify.web.state import WEB


@dataclass(frozen=True, slots=True)
class MenuItem:
    path: str
    label: str  # catalog key
    route: str  # the API route whose roles see it


MENU = (
    MenuItem("/web/scan", "menu.scan", "verify.qr"),
    MenuItem("/web/desk", "menu.desk", "invoices.lookup"),
    MenuItem("/web/batch", "menu.batch", "verify.batch"),
    MenuItem("/web/ledger", "menu.ledger", "reports.ledger"),
    MenuItem("/web/auditor", "menu.auditor", "reports.missing"),
    MenuItem("/web/operator", "menu.operator", "journal.list"),
)


def menu_for(principal: Principal | None) -> list[MenuItem]:
    if principal is None:
        return []
    return [item for item in MENU if admits(item.route, principal)]


async def language(request: web.Request) -> str:
    chosen = (await session_of(request)).get(LANG)
    if chosen in i18n.LANGUAGES:
        return str(chosen)
    return i18n.negotiate(request.headers.get("Accept-Language"))


async def translator(request: web.Request) -> Callable[[str], str]:
    lang = await language(request)
    catalogs = request.app[WEB].catalogs
    return lambda key: catalogs.text(lang, key)


async def page(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    lang = await language(request)
    catalogs = request.app[WEB].catalogs
    principal = request.get(PRINCIPAL)
    base = {
        "t": lambda key: catalogs.text(lang, key),
        "lang": lang,
        "languages": i18n.NAMES,
        "principal": principal,
        "menu": menu_for(principal),
        "csrf": await csrf_token(request),
        "path": request.path,
        "here": request.path_qs,
        "link_qr": request.app[SETTINGS].web.public_url is not None,
    }
    return aiohttp_jinja2.render_template(
        template, request, {**base, **(context or {})}, status=status
    )
