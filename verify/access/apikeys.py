"""API keys: `ivk_<key id>_<secret>`. Only a SHA-256 of the secret is stored (the secret has
256 bits of entropy, so a slow password hash would add cost and no safety); comparison is
constant-time. Verified keys are cached for `cache_seconds`, so a revocation takes effect
within that time in every process that shares the database."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from indexer.store.sqlite_files import write_transaction
from indexer.text import text_problem
from verify.access.roles import Principal, Role

_TOKEN_RE = re.compile(r"ivk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_SCOPE_RE = re.compile(r"[0-9A-Z-]{8,20}")


class ApiKeyError(ValueError):
    """A key request that cannot be honoured (bad role or scope, unknown key id)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    role: Role
    scopes: tuple[str, ...]
    name: str
    created_at: str
    created_by: str | None
    revoked_at: str | None

    def public(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "role": self.role.value, "scopes": list(self.scopes),
                "name": self.name, "created_at": self.created_at,
                "created_by": self.created_by, "revoked_at": self.revoked_at}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def validate_scopes(role: Role, scopes: Iterable[str]) -> tuple[str, ...]:
    cleaned = tuple(sorted({s.strip() for s in scopes if s.strip()}))
    bad = [s for s in cleaned if not _SCOPE_RE.fullmatch(s)]
    if bad:
        raise ApiKeyError("scopes must be tax ids or provider ids: "
                          + ", ".join(repr(s[:40]) for s in bad[:10]))
    if role is Role.INTAKE and not cleaned:
        raise ApiKeyError("an intake key must be scoped to the provider ids it sends as")
    if role is Role.ADMIN and cleaned:
        raise ApiKeyError("an admin key cannot be scoped")
    return cleaned


class KeyStore:
    def __init__(self, conn: aiosqlite.Connection, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = conn
        # key id -> (loaded at, (SHA-256 of the secret, principal) or None when unknown)
        self._cache: dict[str, tuple[float, tuple[bytes, Principal] | None]] = {}
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._loading: dict[str, asyncio.Future[tuple[bytes, Principal] | None]] = {}

    async def create(self, role: Role, scopes: Iterable[str] = (), name: str = "",
                     created_by: str | None = None) -> tuple[str, KeyRecord]:
        """Create a key; the returned token is shown once and never stored."""
        scope_tuple = validate_scopes(role, scopes)
        if len(name) > 100:
            raise ApiKeyError("name is at most 100 characters")
        if (problem := text_problem(name)) is not None:
            raise ApiKeyError(f"name {problem}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = KeyRecord(key_id, role, scope_tuple, name, _now(), created_by, None)
        await self._conn.execute(
            "INSERT INTO api_keys (key_id, secret_hash, role, scopes, name, created_at,"
            " created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, _hash(secret), role.value, json.dumps(scope_tuple), name,
             record.created_at, created_by))
        return f"ivk_{key_id}_{secret}", record

    async def list(self) -> list[KeyRecord]:
        rows = await self._conn.execute_fetchall(
            "SELECT key_id, role, scopes, name, created_at, created_by, revoked_at"
            " FROM api_keys ORDER BY created_at, key_id")
        return [KeyRecord(r[0], Role(r[1]), tuple(json.loads(r[2])), r[3], r[4], r[5], r[6])
                for r in rows]

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (idempotent: revoking a revoked key returns it unchanged)."""
        await self._conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (_now(), key_id))
        self._cache.pop(key_id, None)
        found = [record for record in await self.list() if record.key_id == key_id]
        if not found:
            raise ApiKeyError(f"no key with id {key_id}")
        return found[0]

    async def has_active_admin(self) -> bool:
        rows = list(await self._conn.execute_fetchall(
            "SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1"))
        return bool(rows)

    async def create_first_admin(
            self, name: str, publish: Callable[[str], None]) -> tuple[str, KeyRecord] | None:
        """An admin key if none is active, made once however many processes of the host
        share the file and start together: the check and the insert are one `BEGIN
        IMMEDIATE` transaction (the others wait for it and then find the key). `publish`
        gets the token inside it, before the commit, so a process that dies meanwhile
        leaves neither (the next start makes the key and writes the file again). None
        when an admin key exists. Nothing else may use the connection meanwhile (it runs
        at the start, before the audit trail's flusher)."""
        async with write_transaction(self._conn):
            if await self.has_active_admin():
                return None
            token, record = await self.create(Role.ADMIN, name=name)
            publish(token)
        return token, record

    async def _load(self, key_id: str, now: float) -> tuple[bytes, Principal] | None:
        """One query per key id at a time: the requests of a key whose cached entry has just
        expired (all of them, under load) share it instead of queueing one each behind
        whatever the connection is doing (the audit trail's flush)."""
        loading = self._loading.get(key_id)
        if loading is None:
            loading = asyncio.ensure_future(self._query(key_id, now))
            self._loading[key_id] = loading
            loading.add_done_callback(functools.partial(self._loaded, key_id))
        return await asyncio.shield(loading)

    def _loaded(self, key_id: str, done: asyncio.Future[Any]) -> None:
        self._loading.pop(key_id, None)
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every caller gave up waiting

    async def _query(self, key_id: str, now: float) -> tuple[bytes, Principal] | None:
        rows = list(await self._conn.execute_fetchall(
            "SELECT secret_hash, role, scopes, name FROM api_keys"
            " WHERE key_id = ? AND revoked_at IS NULL", (key_id,)))
        entry = None
        if rows:
            digest, role, scopes, name = rows[0]
            entry = (bytes.fromhex(digest),
                     Principal(key_id, Role(role), frozenset(json.loads(scopes)), name))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now, entry)
        return entry

    async def authenticate(self, token: str) -> Principal | None:
        """The key's principal if `token` is one of ours, active, with its secret. The
        token's pattern is matched only before a load: an id in the cache was loaded from a
        well-formed token, and only the key's own secret hashes to its digest, so with a
        cached id the prefix and the separator are all that is left to check."""
        key_id, now = token[4:16], self._clock()
        cached = (self._cache.get(key_id) if token.startswith("ivk_") and token[16:17] == "_"
                  else None)
        if cached is not None and now - cached[0] < self._cache_seconds:
            entry = cached[1]
        elif _TOKEN_RE.fullmatch(token) is None:
            return None
        else:
            entry = await self._load(key_id, now)
        if entry is None:
            return None
        digest, principal = entry
        # surrogatepass: a header's bytes that are not UTF-8 reach here as lone surrogates
        # (aiohttp), unmatched on a cached key; they must hash (to no key's digest), not raise
        secret_digest = hashlib.sha256(token[17:].encode("utf-8", "surrogatepass")).digest()
        return principal if hmac.compare_digest(digest, secret_digest) else None
