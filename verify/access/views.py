"""The access endpoints (admin only): API keys and the audit trail. With the shared state
(`INVOICE_ES_URL`, `verify.shared_state`) keys are listed and the trail is read from the
deployment's, and a key made or revoked here is pushed to it at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from indexer.store.protocol import StoreUnavailableError
from verify.access.apikeys import ApiKeyError, KeyRecord
from verify.access.audit import AuditEntry, AuditTrail
from verify.access.middleware import PRINCIPAL
from verify.access.roles import Role
from verify.access.shared_audit import AuditShipper
from verify.http.body import read_json_object
from verify.http.errors import ApiError
from verify.http.params import read_query
from verify.http.responses import json_response
from verify.keys import ACCESS, SERVICES
from verify.shared_state import SharedState

SMALL_BODY = 16 * 1024


def _shared(request: web.Request) -> SharedState | None:
    return request.app[SERVICES].shared


async def create_key(request: web.Request) -> web.Response:
    body = await read_json_object(request, SMALL_BODY)
    try:
        role = Role(str(body.get("role")))
    except ValueError:
        raise ApiError(
            422, "invalid_role", "role must be one of " + ", ".join(r.value for r in Role)
        ) from None
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
    if (shared := _shared(request)) is not None:
        shared.nudge()
    access.audit.record(principal, "keys.create", record.key_id, role.value, request.remote)
    return json_response({"token": token, "key": record.public()}, status=201)


async def _listing(request: web.Request) -> list[KeyRecord]:
    shared = _shared(request)
    if shared is not None:
        try:
            await shared.keys.push()
            return await shared.keys.listing()
        except StoreUnavailableError:
            pass  # the cluster is down: this process's copy, as of its last pull
    return await request.app[ACCESS].keys.list()


async def list_keys(request: web.Request) -> web.Response:
    return json_response({"keys": [r.public() for r in await _listing(request)]})


async def revoke_key(request: web.Request) -> web.Response:
    access = request.app[ACCESS]
    key_id = request.match_info["key_id"]
    shared = _shared(request)
    try:
        try:
            record = await access.keys.revoke(key_id)
        except ApiKeyError:
            if shared is None:
                raise
            await shared.keys.pull()  # made on another process since this one's last pull
            record = await access.keys.revoke(key_id)
    except (ApiKeyError, StoreUnavailableError) as exc:
        raise ApiError(404, "key_not_found", str(exc)) from None
    if shared is not None:
        shared.nudge()
    access.audit.record(request[PRINCIPAL], "keys.revoke", key_id, "revoked", request.remote)
    return json_response({"key": record.public()})


async def _entries(
    request: web.Request,
    ask: Callable[[AuditTrail | AuditShipper], Awaitable[list[AuditEntry]]],
) -> tuple[list[AuditEntry], bool]:
    """The deployment's trail when shared (False: this process's alone, the cluster down)."""
    audit = request.app[ACCESS].audit
    await audit.flush()
    shared = _shared(request)
    if shared is not None:
        try:
            return await ask(shared.audit), True
        except StoreUnavailableError:
            pass
    return await ask(audit), shared is None


async def audit_trail(request: web.Request) -> web.Response:
    q = read_query(request.query, ("key_id", "action", "target", "since", "until", "limit"))
    key_id, action = q.text("key_id", max_len=64), q.text("action", max_len=64)
    target, since, until = q.text("target", max_len=200), q.instant("since"), q.instant("until")
    limit = q.integer("limit", low=1, high=1000, default=100)
    entries, whole = await _entries(
        request,
        lambda reader: reader.query(
            key_id=key_id, action=action, target=target, since=since, until=until, limit=limit
        ),
    )
    body: dict[str, object] = {"entries": [e.as_dict() for e in entries]}
    if not whole:  # docs/deployment.md#many-processes: the cluster is down
        body["trail"] = "local"
    return json_response(body)
