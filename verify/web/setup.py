"""`setup_web(app)`: the pages on the service's app (docs/pages.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

from verify.web.dispatch import pages_middleware
from verify.web.pages import NOT_ALLOWED, NOT_FOUND, pages
from verify.web.state import web_ctx
from verify.web.static_files import StaticFiles
from verify.web.verdict import lookup_params


def _desk_query(key: dict[str, Any]) -> str:
    return urlencode(lookup_params(key))


def setup_web(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("verify.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters={"desk_query": _desk_query},
    )
    app.cleanup_ctx.append(web_ctx)
    app.middlewares.append(pages_middleware(pages(StaticFiles()), NOT_FOUND, NOT_ALLOWED))
