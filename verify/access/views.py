"""The access endpoints (admin only): API keys and the audit trail."""

from __future__ import annotations

from aiohttp import web

from verify.access.apikeys import ApiKeyError
from verify.access.middleware import PRINCIPAL
from verify.access.roles import Role
from verify.http.body import read_json_object
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import ACCESS

SMALL_BODY = 16 * 1024


async def create_key(request: web.Request) -> web.Response:
    body = await read_json_object(request, SMALL_BODY)
    try:
        role = Role(str(body.get("role")))
    except ValueError:
        raise ApiError(422, "invalid_role", "role must be one of "
                       + ", ".join(r.value for r in Role)) from None
    scopes, name = body.get("scopes", []), body.get("name", "")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ApiError(422, "invalid_scopes", "scopes must be a list of tax ids")
    if not isinstance(name, str):
        raise ApiError(422, "invalid_name", "name must be a string")
    principal = request[PRINCIPAL]
    access = request.app[ACCESS]
    try:
        token, record = await access.keys.create(role, scopes, name, principal.key_id)
    except ApiKeyError as exc:
        raise ApiError(422, "invalid_key_request", str(exc)) from None
    access.audit.record(principal, "keys.create", record.key_id, role.value, request.remote)
    return json_response({"token": token, "key": record.public()}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    records = await request.app[ACCESS].keys.list()
    return json_response({"keys": [r.public() for r in records]})


async def revoke_key(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    key_id = request.match_info["key_id"]
    try:
        record = await access.keys.revoke(key_id)
    except ApiKeyError as exc:
        raise ApiError(404, "key_not_found", str(exc)) from None
    access.audit.record(request[PRINCIPAL], "keys.revoke", key_id, "revoked", request.remote)
    return json_response({"key": record.public()})


async def audit_trail(request: web.Request) -> web.Response:
    q = read_query(request.query, ("key_id", "action", "target", "since", "until", "limit"))
    entries = await request.app[ACCESS].audit.query(
        key_id=q.text("key_id", max_len=64), action=q.text("action", max_len=64),
        target=q.text("target", max_len=200), since=q.instant("since"),
        until=q.instant("until"), limit=q.integer("limit", low=1, high=1000, default=100))
    return json_response({"entries": [e.as_dict() for e in entries]})
