"""Watches on the pages (docs/pages.md, docs/watches.md): the desk's verdict says whether the
signed-in key watches the invoice answered and its last change, and offers a "Watch" action
(a POST with the session's CSRF token, made as `POST /api/v1/watches` makes it: same limit,
same audit entry); `/web/watches` lists the key's watches in force and its events, newest
first. Only the key's own watches and events are ever read (the store is asked by key id)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from indexer.keys import key_from_doc_id
from verify.access.middleware import PRINCIPAL
from verify.access.roles import admits
from verify.http.errors import ApiError
from verify.keys import SERVICES, SETTINGS
from verify.watches.model import WatchEvent
from verify.watches.views import DEFAULT_DAYS, answered_key, make_watches, watch_key
from verify.web.forms import FORM
from verify.web.render import page
from verify.web.verdict import desk_link

#: Events a page of `/web/watches` shows.
PAGE = 50
_DESK = "/web/desk"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def event_row(event: WatchEvent) -> dict[str, Any]:
    """An event as the pages show it: when, which invoice (a desk link), its new status and
    what made the change."""
    by = event.details.get("by") or {}
    key = key_from_doc_id(event.invoice_id) if event.invoice_id else None
    return {"at": _day(event.at), "key": event.key, "invoice_id": event.invoice_id,
            "link": desk_link(key.as_dict()) if key is not None else None,
            "status": event.status, "kind": event.kind,
            "by": by.get("notice_id") or by.get("invoice_id") or event.details.get("gap_id"),
            "red_letter": bool(event.details.get("red_letter"))}


async def watch_line(request: web.Request, answer: dict[str, Any],
                     lookup_key: str) -> dict[str, Any] | None:
    """What the verdict says of watching: the key watched (the invoice answered, or the key
    asked while unconfirmed), whether the signed-in key watches it and until when, and its
    last change event. None when nothing can be watched or the key's role may not watch."""
    hook = request.app[SERVICES].watches
    key = answered_key(answer, lookup_key)
    if hook is None or key is None or not admits("watches.create", request[PRINCIPAL]):
        return None
    key_id = request[PRINCIPAL].key_id
    watch = await hook.store.watch_of(key_id, key, now=time.time())
    last = await hook.store.latest(key_id, key=key, limit=1)
    return {"key": key, "until": _day(watch.expires_at) if watch else None,
            "last": event_row(last[0]) if last else None, "back": request.path_qs}


async def watch(request: web.Request) -> web.StreamResponse:
    """The verdict's "Watch" button: the key watched for the default period, then back to
    the verdict (a desk address only; anything else goes to the watches page)."""
    form = request[FORM]
    key = watch_key(form.get("key"), request.app[SETTINGS].rules)
    days = min(DEFAULT_DAYS, request.app[SETTINGS].watch_max_days)
    await make_watches(request, [key], days=days, callback_url=None)
    back = form.get("back")
    raise web.HTTPSeeOther(back if back == _DESK or back.startswith(_DESK + "?")
                           else "/web/watches")


async def watches_page(request: web.Request) -> web.StreamResponse:
    """The key's watches in force and its events, newest first, `PAGE` at a time (`before`:
    the cursor of the last event shown)."""
    hook = request.app[SERVICES].watches
    if hook is None:
        raise ApiError(503, "watches_unavailable", "watches are not set up in this process")
    given = request.query.get("before", "")
    before = int(given) if given.isdigit() and len(given) < 19 else None
    key_id = request[PRINCIPAL].key_id
    watches = await hook.store.watches(key_id, now=time.time())
    events = await hook.store.latest(key_id, before=before, limit=PAGE)
    return await page(request, "watches.html", {
        "watches": [{"key": w.key, "until": _day(w.expires_at), "callback": w.callback_url}
                    for w in watches],
        "events": [event_row(e) for e in events],
        "older": events[-1].seq if len(events) == PAGE else None,
    })
