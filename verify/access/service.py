"""The access service the middleware and handlers talk to: authenticate a request, spend
its budgets, record what it did. Built once per app in `access_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from verify.access.apikeys import KeyStore
from verify.access.audit import AuditTrail
from verify.access.db import open_access_db
from verify.access.ratelimit import MemoryRateLimiter, NoRateLimiter, RateLimiter, Take
from verify.access.roles import Principal, Role
from verify.errors import ApiError
from verify.settings import Limits, Settings

log = logging.getLogger("verify.access")

LOCAL_ADMIN = Principal("local", Role.ADMIN, frozenset(), "insecure local mode")
_DAY, _HOUR, _MINUTE = 86_400.0, 3_600.0, 60.0


def too_many(code: str, message: str, wait: float) -> ApiError:
    retry = 3600 if math.isinf(wait) else max(1, math.ceil(wait))
    error = ApiError(429, code, message, {"retry_after": retry})
    error.headers = {"Retry-After": str(retry)}
    return error


def _key_limited(wait: float) -> ApiError:
    return too_many("key_rate_limited", "this key is sending requests too fast", wait)


@dataclass
class Access:
    keys: KeyStore
    audit: AuditTrail
    limiter: RateLimiter
    limits: Limits
    insecure_local: bool = False

    async def authenticate(self, request: web.Request) -> Principal:
        if self.insecure_local:
            return LOCAL_ADMIN
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        principal = (await self.keys.authenticate(token.strip())
                     if scheme.lower() == "bearer" else None)
        if principal is not None:
            return principal
        client = request.remote or "unknown"
        wait = await self.limiter.take(f"authfail:{client}", self.limits.auth_failures_per_minute,
                                       self.limits.auth_failures_per_minute / _MINUTE)
        if wait:
            raise too_many("auth_rate_limited", "too many failed authentication attempts", wait)
        error = ApiError(401, "unauthorized", "a valid API key is required: "
                         "Authorization: Bearer ivk_...")
        error.headers = {"WWW-Authenticate": 'Bearer realm="invoice-verify"'}
        raise error

    def _key_take(self, principal: Principal) -> Take:
        limits = self.limits
        return (f"key:{principal.key_id}", limits.key_burst, limits.key_per_minute / _MINUTE, 1)

    async def spend_key_budget(self, principal: Principal) -> None:
        if wait := await self.limiter.take(*self._key_take(principal)):
            raise _key_limited(wait)

    async def spend_lookup_budget(self, principal: Principal, target: str, *,
                                  with_key_budget: bool = False) -> None:
        """Before a lookup: refuse a key that used up its misses (checked first, spending
        nothing), or an over-checked invoice; with `with_key_budget`, the key's own budget
        first (a lookup whose key budget was left to it: `verify.access.middleware`). One
        call to the limiter for all of them."""
        misses, per_day = self.limits.misses_per_hour, self.limits.invoice_per_day
        takes: tuple[Take, ...] = ((f"miss:{principal.key_id}", misses, misses / _HOUR, 0),
                                   (f"inv:{target}", per_day, per_day / _DAY, 1))
        if with_key_budget:
            takes = (self._key_take(principal), *takes)
        refused, wait = await self.limiter.take_in_turn(takes)
        if refused < 0:
            return
        if with_key_budget:
            if refused == 0:
                raise _key_limited(wait)
            refused -= 1
        if refused == 0:
            raise too_many("miss_rate_limited", "too many lookups of invoices that do not "
                           "exist; this looks like enumeration", wait)
        raise too_many("invoice_rate_limited",
                       f"this invoice was verified {per_day} times in the last day", wait)

    async def note_miss(self, principal: Principal) -> None:
        misses = self.limits.misses_per_hour
        await self.limiter.take(f"miss:{principal.key_id}", misses, misses / _HOUR)


async def bootstrap_admin(keys: KeyStore, path: Path) -> str | None:
    """First run: no active admin key exists, so make one and write it to `path` (mode 600).
    Returns the token, or None when an admin key already exists."""
    if await keys.has_active_admin():
        return None
    token, record = await keys.create(Role.ADMIN, name="bootstrap admin (first run)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    log.warning("no admin key existed: created one", extra={"key_id": record.key_id,
                                                            "token_file": str(path)})
    return token


@contextlib.asynccontextmanager
async def open_access(settings: Settings,
                      limiter: RateLimiter | None = None) -> AsyncIterator[Access]:
    async with open_access_db(settings.access_path) as conn:
        keys = KeyStore(conn)
        audit = AuditTrail(conn, retention=timedelta(days=settings.audit_retention_days))
        default: RateLimiter = (NoRateLimiter() if settings.insecure_local
                                else MemoryRateLimiter())
        access = Access(keys, audit, limiter or default, settings.limits,
                        settings.insecure_local)
        if not settings.insecure_local:
            await bootstrap_admin(keys, settings.admin_key_path)
        flusher = asyncio.create_task(audit.run(), name="audit-flush")
        try:
            yield access
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await audit.flush()
