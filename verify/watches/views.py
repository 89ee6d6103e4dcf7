"""The watches' routes (docs/watches.md): `POST /watches` (watch keys for a period),
`GET /watches` (the caller's), `DELETE /watches/{id}`, `GET /watches/events` (the caller's
feed, paged by cursor), and `watch_answer`, which a lookup or batch row with `watch=true`
calls to watch the invoice it answered.

Tenancy: a key sees, renews and deletes only its own watches and events; another key's
watch answers 404 as one that does not exist. Events carry no party of an invoice (its id
and new status only), so they need no redaction. Making and deleting watches is in the audit
trail (`watch.create`: target the watch id, outcome the key watched, or
`watch_limit_reached`; `watch.delete`).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from multidict import MultiDict

from indexer.keys import key_from_doc_id
from indexer.rules import RuleConfig
from verify.access.middleware import PRINCIPAL
from verify.http.body import read_json_object
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import ACCESS, SERVICES, SETTINGS
from verify.lookup.callback_url import validate_callback_url
from verify.lookup.query import parse_lookup
from verify.watches.events import WatchHook
from verify.watches.model import AUTHORITY_CODE_PREFIX, Watch, WatchEvent, stamp
from verify.watches.store import WatchLimitReached

#: Keys one request may watch.
MAX_KEYS = 1000
_BODY_LIMIT = 512 * 1024
#: A watch made by `watch=true`, or without `days`, lasts this long (at most the maximum).
DEFAULT_DAYS = 90
_DAY = 86_400.0


def _hook(request: web.Request) -> WatchHook:
    hook = request.app[SERVICES].watches
    if hook is None:  # never in the service (`verify.services.open_services` makes it)
        raise ApiError(503, "watches_unavailable", "watches are not set up in this process")
    return hook


def _bad_key(index: int, message: str) -> ApiError:
    return ApiError(422, "invalid_watch_key", message, {"index": index})


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("values must be text or whole numbers")
    return str(value)


def watch_key(given: object, rules: RuleConfig, index: int = 0) -> str:
    """A key as watches hold it: an invoice id, or `authority_code:<code>`, from either
    that text or an object of the lookup's key parameters."""
    try:
        if isinstance(given, str):
            if given.startswith(AUTHORITY_CODE_PREFIX):
                code = given.removeprefix(AUTHORITY_CODE_PREFIX)
                return parse_lookup(MultiDict({"authority_code": code}), rules).lookup_key
            key = key_from_doc_id(given)
            if key is None:
                raise _bad_key(index, "not an invoice id (vn:... or cn:...) nor "
                               "authority_code:<code>")
            return key.doc_id
        if isinstance(given, dict):
            params = MultiDict({str(k): _cell(v) for k, v in given.items() if v is not None})
            return parse_lookup(params, rules).lookup_key
    except ValueError as exc:
        raise _bad_key(index, str(exc)) from None
    except ApiError as exc:
        if exc.code == "invalid_watch_key":
            raise
        raise _bad_key(index, exc.message) from None
    raise _bad_key(index, "a key is an invoice id or an object of lookup key parameters")


def _keys(given: object, rules: RuleConfig) -> list[str]:
    if not isinstance(given, list) or not given:
        raise ApiError(422, "invalid_body", "`keys` must be a non-empty list", {"field": "keys"})
    if len(given) > MAX_KEYS:
        raise ApiError(422, "invalid_body", f"at most {MAX_KEYS} keys a request",
                       {"field": "keys", "limit": MAX_KEYS})
    return [watch_key(k, rules, n) for n, k in enumerate(given)]


def _days(given: object, most: int) -> int:
    if given is None:
        return min(DEFAULT_DAYS, most)
    if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= most:
        raise ApiError(422, "invalid_body", f"`days` must be a whole number from 1 to {most}",
                       {"field": "days", "maximum": most})
    return given


def _limit_reached(exc: WatchLimitReached) -> ApiError:
    return ApiError(409, "watch_limit_reached", f"this key may hold {exc.limit} watches in "
                    "force; delete some or let them expire", {
                        "limit": exc.limit, "active": exc.active, "asked": exc.asked})


async def make_watches(request: web.Request, keys: list[str], *, days: int,
                       callback_url: str | None) -> list[Watch]:
    """Watches of `keys` for the caller, audited; 409 `watch_limit_reached` (nothing made)
    past the key's limit."""
    principal, audit = request[PRINCIPAL], request.app[ACCESS].audit
    limit = request.app[SETTINGS].watches_per_key
    now = time.time()
    try:
        made = await _hook(request).store.create(
            principal.key_id, keys, now=now, expires_at=now + days * _DAY,
            callback_url=callback_url, limit=limit)
    except WatchLimitReached as exc:
        audit.record(principal, "watch.create", None, "watch_limit_reached", request.remote)
        raise _limit_reached(exc) from None
    for watch in made:
        audit.record(principal, "watch.create", watch.id, watch.key, request.remote)
    return made


async def require_room(request: web.Request) -> None:
    """Before a lookup with `watch=true`: refused (409) when the key's watches are full,
    rather than after the lookup was made and its budget spent."""
    settings, principal = request.app[SETTINGS], request[PRINCIPAL]
    active = await _hook(request).store.count(principal.key_id, now=time.time())
    if active >= settings.watches_per_key:
        request.app[ACCESS].audit.record(principal, "watch.create", None,
                                         "watch_limit_reached", request.remote)
        raise _limit_reached(WatchLimitReached(settings.watches_per_key, active, 1))


def answered_key(answer: dict[str, Any], lookup_key: str) -> str | None:
    """What a `watch=true` answer watches: the invoice found, or, unconfirmed, the key asked
    (its gap's resolution is then an event); nothing for an invoice that does not exist."""
    invoice = answer.get("invoice")
    if isinstance(invoice, dict) and isinstance(invoice.get("id"), str):
        return str(invoice["id"])
    return lookup_key if answer.get("status") == "unconfirmed" else None


async def watch_answer(request: web.Request, answer: dict[str, Any], lookup_key: str, *,
                       callback_url: str | None = None,
                       raise_refusal: bool = True) -> dict[str, Any]:
    """`answer` with `watch`: the watch made of what it answered (null when nothing is
    watched). A refusal raises, or (a batch row: `raise_refusal` false) is the row's
    `watch_error`."""
    key = answered_key(answer, lookup_key)
    if key is None:
        return {**answer, "watch": None}
    days = min(DEFAULT_DAYS, request.app[SETTINGS].watch_max_days)
    try:
        (watch,) = await make_watches(request, [key], days=days, callback_url=callback_url)
    except ApiError as exc:
        if raise_refusal:
            raise
        return {**answer, "watch": None, "watch_error": exc.body()["error"]}
    return {**answer, "watch": watch.as_dict()}


async def create_watches(request: web.Request) -> web.Response:
    body = await read_json_object(request, _BODY_LIMIT)
    settings = request.app[SETTINGS]
    keys = _keys(body.get("keys"), settings.rules)
    days = _days(body.get("days"), settings.watch_max_days)
    callback = body.get("callback_url")
    if callback is not None and not isinstance(callback, str):
        raise ApiError(422, "invalid_body", "`callback_url` must be a URL",
                       {"field": "callback_url"})
    url = None if not callback else validate_callback_url(
        callback, allow_private=settings.fallback.callback_allow_private)
    made = await make_watches(request, keys, days=days, callback_url=url)
    return json_response({"watches": [w.as_dict() for w in made]}, status=201)


async def list_watches(request: web.Request) -> web.Response:
    read_query(request.query, set())
    principal = request[PRINCIPAL]
    watches = await _hook(request).store.watches(principal.key_id, now=time.time())
    return json_response({"watches": [w.as_dict() for w in watches],
                         "limit": request.app[SETTINGS].watches_per_key})


async def delete_watch(request: web.Request) -> web.Response:
    watch_id = request.match_info["id"]
    principal = request[PRINCIPAL]
    deleted = await _hook(request).store.delete(principal.key_id, watch_id)
    request.app[ACCESS].audit.record(principal, "watch.delete", watch_id,
                                     "deleted" if deleted else "not_found", request.remote)
    if not deleted:
        raise ApiError(404, "watch_not_found", "this key has no watch with this id",
                       {"id": watch_id})
    return json_response({"id": watch_id, "deleted": True})


def _delivery(event: WatchEvent, max_attempts: int) -> dict[str, Any] | None:
    """Where the event's callback stands (the feed only: the callback does not carry it):
    `sent`, `pending` (to be tried again) or `failed` (given up after `max_attempts`)."""
    if event.delivery is None:
        return None
    attempts, sent_at, error = event.delivery
    state = "sent" if sent_at is not None else "failed" if attempts >= max_attempts \
        else "pending"
    return {"state": state, "attempts": attempts,
            "sent_at": None if sent_at is None else stamp(sent_at), "error": error}


async def watch_events(request: web.Request) -> web.Response:
    """The caller's events after `after` (a cursor: the `next` of the previous page, or 0),
    oldest first, of one watched `key` when given."""
    query = read_query(request.query, {"key", "after", "limit"})
    after = query.integer("after", low=0, high=2**62, default=0)
    limit = query.integer("limit", low=1, high=1000, default=100)
    given = query.text("key", max_len=200)
    key = None if given is None else watch_key(given, request.app[SETTINGS].rules)
    events = await _hook(request).store.events(request[PRINCIPAL].key_id, after=after,
                                               key=key, limit=limit)
    tries = request.app[SETTINGS].fallback.callback_max_attempts
    shown = [{**e.as_dict(), "callback": _delivery(e, tries)} for e in events]
    return json_response({"events": shown, "next": str(events[-1].seq if events else after),
                          "more": len(events) == limit})
