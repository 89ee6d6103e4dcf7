"""The sign-in kept in the session: the API key (encrypted in the cookie, never written into
a page or browser storage), the CSRF token every form and script sends back, and the
language chosen. The key is checked again on every page (`Access.authenticate`, as for an
API request): a revoked key ends the sign-in at its next page."""

from __future__ import annotations

import secrets

from aiohttp import web
from aiohttp_session import Session
from multidict import CIMultiDict

from verify.access.roles import Principal
from verify.http.errors import ApiError
from verify.keys import ACCESS

TOKEN, CSRF, LANG = "token", "csrf", "lang"
#: The request's session, loaded from its cookie by `verify.web.dispatch` (aiohttp-session's
#: storage, used directly: its middleware keeps its state under plain string keys).
SESSION = web.RequestKey("web_session", Session)


async def session_of(request: web.Request) -> Session:
    return request[SESSION]


async def authenticate(request: web.Request, token: str) -> Principal:
    """The key's principal exactly as the API finds it (a failure spends the client's
    failed-attempt budget and raises 401, or 429 when too many failed)."""
    headers = CIMultiDict(request.headers)
    headers["Authorization"] = f"Bearer {token}"
    return await request.app[ACCESS].authenticate(request.clone(headers=headers))


async def signed_in(request: web.Request) -> Principal | None:
    session = await session_of(request)
    token = session.get(TOKEN)
    if not isinstance(token, str):
        return None
    try:
        return await authenticate(request, token)
    except ApiError as exc:
        if exc.status != 401:
            raise
        session.pop(TOKEN, None)  # revoked, or the keys were reset: sign in again
        return None


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, made with the session."""
    session = await session_of(request)
    token = session.get(CSRF)
    if not isinstance(token, str):
        token = session[CSRF] = secrets.token_urlsafe(24)
    return token


async def sign_in(request: web.Request, token: str) -> Principal:
    principal = await authenticate(request, token)
    session = await session_of(request)
    lang = session.get(LANG)
    session.invalidate()  # nothing of the session before the sign-in carries on
    session[TOKEN], session[CSRF] = token, secrets.token_urlsafe(24)
    if isinstance(lang, str):
        session[LANG] = lang
    return principal


async def sign_out(request: web.Request) -> None:
    (await session_of(request)).invalidate()
