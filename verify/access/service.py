"""The access service the middleware and handlers talk to: authenticate a request, spend
its budgets, record what it did. Built once per app in `access_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from indexer.model import Invoice
from indexer.store.sqlite_files import private_dir
from verify.access.apikeys import KeyStore
from verify.access.audit import AuditTrail
from verify.access.db import open_access_db
from verify.access.ratelimit import (
    MemoryRateLimiter,
    NoRateLimiter,
    QueuedTurn,
    RateLimiter,
    Take,
)
from verify.access.roles import Principal, Role
from verify.access.shared_keys import KEY_CACHE_S
from verify.http.errors import ApiError
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


def _misses_limited(wait: float) -> ApiError:
    return too_many("miss_rate_limited", "too many lookups of invoices that do not exist; "
                    "this looks like enumeration", wait)


#: How long a batch row may wait for its key's budget to refill before it is refused: a
#: batch larger than the key's burst is paced at the key's rate instead of answered with
#: rows of `key_rate_limited` (docs/access.md).
MAX_PACE_S = 10.0


class KeyDue(enum.Enum):
    """Whether a lookup spends its key's budget with its own takes (`verify.access.middleware`
    decides): not at all (spent already), once for the request, or once per row, waiting
    for the refill up to `MAX_PACE_S` (a batch)."""

    NO = "no"
    ONCE = "once"
    PACED = "paced"


class _Budget(enum.Enum):
    KEY = "key"
    MISSES = "misses"
    KEY_SHARE = "key_share"  # this key's share of the invoice's daily budget
    INVOICE = "invoice"  # the invoice's daily budget, all keys together


_INVOICE_TURN = (_Budget.KEY_SHARE, _Budget.INVOICE)
#: The budgets of a lookup's turn, in order, by (key budget due, invoice id known).
_TURNS = {(with_key, with_doc): ((_Budget.KEY,) if with_key else ()) + (_Budget.MISSES,)
          + (_INVOICE_TURN if with_doc else ())
          for with_key in (False, True) for with_doc in (False, True)}


@dataclass(frozen=True, slots=True)
class Admission:
    """What a lookup's budgets said before its read. `invoice_wait` > 0: the invoice's daily
    budget is spent, so only the invoice's own parties get an answer (`Access.settle`);
    `doc_id` None: asked by authority code, so the invoice's budgets are spent once the read
    has named the invoice."""

    doc_id: str | None
    invoice_wait: float = 0.0
    refusal: ApiError | None = None


@dataclass(frozen=True, slots=True)
class QueuedAdmission:
    """`Access.queue_admit`'s turn, sent; `Access.admission` reads its verdict."""

    kinds: tuple[_Budget, ...]
    turn: QueuedTurn
    doc_id: str | None
    key: KeyDue


def is_party(principal: Principal, seller_tax_id: str | None,
             buyer_tax_id: str | None) -> bool:
    """The invoice's seller or buyer (a key scoped to either), or an admin."""
    return principal.sees_tax_id(seller_tax_id) or principal.sees_tax_id(buyer_tax_id)


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

    def __post_init__(self) -> None:
        # Built once: a lookup's takes are made on the hot path (verify/lookup/verification.py).
        limits = self.limits
        self._key_rates = {role: (budget.burst, budget.per_minute / _MINUTE)
                           for role, budget in limits.key_budgets}
        share, per_day = min(limits.invoice_per_key_per_day, limits.invoice_per_day), \
            limits.invoice_per_day
        #: the invoice's buckets (capacity, per second); a lookup spends one token of each
        self._share = (share, share / _DAY)
        self._day = (per_day, per_day / _DAY)
        self._misses = (limits.misses_per_hour, limits.misses_per_hour / _HOUR)
        #: key id -> (role, its key take, its misses peek), made once per key (bounded)
        self._own: dict[str, tuple[Role, Take, Take]] = {}
        #: The limiter's turn without a coroutine when it answers from this process's memory
        #: (`admit` awaits nothing then unless a batch row has to wait for its refill).
        self._take_now: Callable[[Sequence[Take]], tuple[int, float]] | None = (
            self.limiter.take_in_turn_now
            if isinstance(self.limiter, MemoryRateLimiter | NoRateLimiter) else None)

    def _own_takes(self, principal: Principal) -> tuple[Take, Take]:
        own = self._own.get(principal.key_id)
        if own is None or own[0] is not principal.role:
            if len(self._own) >= 10_000:
                self._own.clear()
            burst, rate = self._key_rates[principal.role.value]
            own = (principal.role, (f"key:{principal.key_id}", burst, rate, 1),
                   (f"miss:{principal.key_id}", *self._misses, 0))
            self._own[principal.key_id] = own
        return own[1], own[2]

    def _key_take(self, principal: Principal) -> Take:
        return self._own_takes(principal)[0]

    def _invoice_takes(self, principal: Principal, doc_id: str) -> tuple[Take, Take]:
        """One bucket per invoice (by its id, whatever key form asked), and within it this
        key's share, so no single key can spend the whole day's budget."""
        (share, share_rate), (day, day_rate) = self._share, self._day
        return ((f"inv:{doc_id}:key:{principal.key_id}", share, share_rate, 1),
                (f"inv:{doc_id}", day, day_rate, 1))

    def _refusal(self, budget: _Budget, wait: float) -> ApiError:
        if budget is _Budget.KEY:
            return _key_limited(wait)
        if budget is _Budget.MISSES:
            return _misses_limited(wait)
        share = min(self.limits.invoice_per_key_per_day, self.limits.invoice_per_day)
        if budget is _Budget.KEY_SHARE:
            return too_many("invoice_rate_limited", f"this key verified this invoice {share} "
                            "times in the last day", wait)
        return too_many("invoice_rate_limited", "this invoice was verified "
                        f"{self.limits.invoice_per_day} times in the last day", wait)

    async def spend_key_budget(self, principal: Principal, *, peek: bool = False) -> None:
        """One token of the key's budget; with `peek`, only whether one will be there within
        the wait a paced row accepts (a batch, whose rows spend them, is refused before its
        body is read when not)."""
        bucket, capacity, per_second, _ = self._key_take(principal)
        wait = await self.limiter.take(bucket, capacity, per_second, 0 if peek else 1)
        if wait > (MAX_PACE_S if peek else 0.0):
            raise _key_limited(wait)

    async def _turn(self, kinds: tuple[_Budget, ...], takes: Sequence[Take],
                    doc_id: str | None, key: KeyDue,
                    first: tuple[int, float] | None = None) -> Admission:
        """The turn's takes, and what their answer means; `first`: the answer of a first
        try already made (`admit`'s, from memory)."""
        while True:
            if first is None:
                refused, wait = await self.limiter.take_in_turn(takes)
            else:
                (refused, wait), first = first, None
            if refused < 0:
                return Admission(doc_id)
            budget = kinds[refused]
            if budget is _Budget.INVOICE:
                return Admission(doc_id, invoice_wait=wait)
            if budget is _Budget.KEY and key is KeyDue.PACED and wait <= MAX_PACE_S:
                await asyncio.sleep(wait)  # a batch row waits for its key's refill
                continue
            return Admission(doc_id, refusal=self._refusal(budget, wait))

    def _lookup_turn(self, principal: Principal, doc_id: str | None,
                     key: KeyDue) -> tuple[tuple[_Budget, ...], tuple[Take, ...]]:
        key_take, misses = self._own_takes(principal)
        with_key = key is not KeyDue.NO
        kinds = _TURNS[with_key, doc_id is not None]
        if doc_id is None:
            return kinds, ((key_take, misses) if with_key else (misses,))
        share, day = self._invoice_takes(principal, doc_id)
        return kinds, ((key_take, misses, share, day) if with_key else (misses, share, day))

    async def admit(self, principal: Principal, doc_id: str | None, *,
                    key: KeyDue = KeyDue.NO) -> Admission:
        """Before a lookup's read, one limiter call: its key's budget (when `key` says so),
        then a key that used up its misses is refused (checked, nothing spent), then the
        invoice's budgets (this key's share, then the invoice's whole day) when its id is
        known. Raises 429 for all but the invoice's whole day (see `Admission`)."""
        kinds, takes = self._lookup_turn(principal, doc_id, key)
        take_now = self._take_now
        if take_now is None:
            admission = await self._turn(kinds, takes, doc_id, key)
        else:
            first = take_now(takes)
            if first[0] < 0:
                return Admission(doc_id)
            admission = await self._turn(kinds, takes, doc_id, key, first)
        if admission.refusal is not None:
            raise admission.refusal
        return admission

    def queue_admit(self, principal: Principal, doc_id: str | None, *,
                    key: KeyDue = KeyDue.NO) -> QueuedAdmission:
        """`admit`'s turn sent before this returns (on Redis, queued on the round trips'
        lane: `fallback.redis_trips`), so the request can read meanwhile with no task for
        the turn; `admission` (or, when nobody will wait, `QueuedAdmission.turn.drop()`)
        must follow."""
        kinds, takes = self._lookup_turn(principal, doc_id, key)
        return QueuedAdmission(kinds, self.limiter.queue_turn(takes), doc_id, key)

    async def admission(self, queued: QueuedAdmission) -> Admission:
        """`admit`'s answer for a turn of `queue_admit` (raises its 429 the same way)."""
        first = await self.limiter.finish_turn(queued.turn)
        if first[0] < 0:
            return Admission(queued.doc_id)
        admission = await self._turn(queued.kinds, queued.turn.takes, queued.doc_id,
                                     queued.key, first)
        if admission.refusal is not None:
            raise admission.refusal
        return admission

    async def admit_many(self, principal: Principal,
                         doc_ids: Sequence[str]) -> list[Admission]:
        """`admit` for each invoice of a ledger, asked together (on Redis: one round trip);
        refusals are returned, not raised, so each line answers for itself."""
        return list(await asyncio.gather(*(
            self._turn(*self._lookup_turn(principal, doc_id, KeyDue.NO), doc_id, KeyDue.NO)
            for doc_id in doc_ids)))

    async def settle(self, principal: Principal, admission: Admission,
                     invoice: Invoice | None) -> None:
        """After the read, before anything is recorded or answered: a lookup by authority
        code spends the budgets of the invoice it found (by the invoice's id, the bucket
        every key form shares); a lookup whose invoice is out of its daily budget is refused
        unless the caller is one of the invoice's parties, whom nobody else's lookups may
        lock out (each still has only its own key's share)."""
        wait = admission.invoice_wait
        if admission.doc_id is None and invoice is not None:
            admitted = await self._turn(_INVOICE_TURN,
                                        self._invoice_takes(principal, invoice.doc_id),
                                        invoice.doc_id, KeyDue.NO)
            if admitted.refusal is not None:
                raise admitted.refusal
            wait = admitted.invoice_wait
        if wait and not (invoice is not None and is_party(principal, invoice.seller_tax_id,
                                                          invoice.buyer_tax_id)):
            raise self._refusal(_Budget.INVOICE, wait)

    async def note_miss(self, principal: Principal, target: str | None = None) -> float:
        """Spend one of the key's misses (a lookup that found nothing); the wait when none
        was left (a ledger then withholds the line's answer). A miss of `target` this key
        already had in the last hour is not counted again: asking twice about the same
        unknown invoice (a batch run again) is not enumeration, asking about many is."""
        takes = self._miss_takes(principal, target)
        refused, wait = await self.limiter.take_in_turn(takes)
        return wait if refused == len(takes) - 1 else 0.0

    def spend_miss(self, principal: Principal, target: str | None = None) -> None:
        """`note_miss` for a caller that does not read its wait (a lookup: its next turn's
        peek refuses once the misses are spent), without waiting for it: sent before this
        returns (on Redis, queued on the round trips' lane), so every turn this process
        sends after it is made after it; a failure is handled as `note_miss`'s would be
        (memory buckets) and logged (`RateLimiter.spend_later`). Another process's turn
        may reach Redis before it by at most its round trip: the caller has its answer
        while the spend is still on its way."""
        self.limiter.spend_later(self._miss_takes(principal, target))

    def _miss_takes(self, principal: Principal, target: str | None) -> tuple[Take, ...]:
        miss: Take = (f"miss:{principal.key_id}", *self._misses, 1)
        return (miss,) if target is None else (
            (f"missed:{principal.key_id}:{target}", 1, 1 / _HOUR, 1), miss)

    def misses_limited(self, wait: float) -> ApiError:
        return _misses_limited(wait)

    def invoice_limited(self, wait: float) -> ApiError:
        return self._refusal(_Budget.INVOICE, wait)


#: The name of a first-run admin key (made here, or claimed in the cluster:
#: `verify.shared_state.SharedState.claim_admin`).
BOOTSTRAP_NAME = "bootstrap admin (first run)"


async def bootstrap_admin(keys: KeyStore, path: Path) -> str | None:
    """First run: no active admin key exists, so make one and write it to `path` (mode 600).
    Returns the token, or None when an admin key already exists. The processes of one host
    sharing the data directory (`serve --workers`, two `serve` started together) make one
    key between them: the check and the creation are one transaction of `access.sqlite3`
    (`KeyStore.create_first_admin`), and the file is written whole before it commits."""
    made = await keys.create_first_admin(BOOTSTRAP_NAME, lambda token: write_admin_token(
        path, token))
    if made is None:
        return None
    token, record = made
    log.warning("no admin key existed: created one", extra={"key_id": record.key_id,
                                                            "token_file": str(path)})
    return token


def write_admin_token(path: Path, token: str) -> None:
    """The first admin key's token in `path`, owner-only (mode 600), written whole: a new
    file of this process's own (`O_EXCL`), synced, then renamed over `path`, so a reader
    never sees a partial token and two writers never interleave theirs."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a process of this pid that died mid-write
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.asynccontextmanager
async def open_access(settings: Settings,
                      limiter: RateLimiter | None = None) -> AsyncIterator[Access]:
    async with open_access_db(settings.access_path) as conn:
        # With the shared keys (Elasticsearch) a revocation reaches this copy within the sync
        # (verify/access/shared_keys.py), so the cache is shorter: 5 s in all.
        keys = KeyStore(conn, cache_seconds=KEY_CACHE_S if settings.es_url else 5.0)
        audit = AuditTrail(conn, retention=timedelta(days=settings.audit_retention_days))
        default: RateLimiter = (NoRateLimiter() if settings.insecure_local
                                else MemoryRateLimiter())
        access = Access(keys, audit, limiter or default, settings.limits,
                        settings.insecure_local)
        if not settings.insecure_local:
            with contextlib.suppress(FileNotFoundError):  # one an earlier version left open
                settings.admin_key_path.chmod(0o600)
            await bootstrap_admin(keys, settings.admin_key_path)
        flusher = asyncio.create_task(audit.run(), name="audit-flush")
        try:
            yield access
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await audit.flush()
