"""Answers reused on `GET /invoices/lookup` (docs/lookups.md#answers-reused).

A lookup's answer is built from the invoice store (or the replica), the outage log, the
registry's record of the seller and the scheme's day, and shaped for the caller (redaction,
the Chinese second factor). While none of those can have changed, the same caller asking the
same query gets the same bytes: this keeps them, encoded, by (key id, role, scopes, raw
query string) and sends them again. What must happen per request still does, exactly as for
a built answer (`verify.lookup.verification.check_query`): the caller was authenticated
(so a revoked key gets 401), the budgets are taken (`admit`, `settle` with the invoice,
`spend_miss` for a miss; a refused caller gets its 429), the audit trail gets its row and the
answer metrics their count. Skipped: parsing, the read, building, redaction, encoding.

Only plain lookups are kept: an entry is made only from a lookup whose parsed query had no
`receipt`, `watch` or `callback_url` (so a query string naming one never finds an entry,
however it is encoded). Never kept: `unconfirmed` answers, answers carrying `check_count`
or `pending_intake`, anything while the intake journal holds pending entries.

An entry is answered again only while, checked on each use:
- the scheme's day has not changed since it was built (seller status, the verification
  window and the intake lag read today's date in UTC+7 / UTC+8);
- the outage log's windows are the ones it was built with (`OutageLog.generation`), and for
  a miss no window or intake lag makes it unconfirmed now (`OutageLog.miss_window`);
- the primary's health is what it was: healthy (no maintenance in force, breaker closed) for
  a primary answer; the same maintenance window, or the breaker still in its open period,
  for a replica answer, and the replica's breaker closed;
- a primary answer: the store tells cheaply that its data are unchanged (`SqliteStore.version`:
  this process's commits at once, another process's within a millisecond). Elasticsearch
  has no such signal, so its answers are not kept;
- a replica answer: while the replica's generation (`Replica.seen_generation`: every write
  of any process changes it), seen at most `replica_seconds` ago
  (`INVOICE_ANSWER_REUSE_REPLICA_MS`), is the one seen before its read, and for at most
  `REPLICA_GENERATION_CAP_S` (a writer that does not change the generation, a release
  before it, is seen within that); when no generation was known at its read, for at most
  `replica_seconds`;
- a Vietnamese answer with its seller's status: no registry import through this process
  since, nor (on SQLite) a change of the registry file (`CachedRegistry.generation`), and
  only while the record it used is still kept (`CachedRegistry.remaining`: on
  Elasticsearch `TTL_S`), so another process's import is seen as it is without reuse.
A primary answer's `as_of` is the moment it is sent (the data are those of that moment); a
replica answer keeps its own. Bounded: `max_entries`, cleared whole when full.

A plain lookup answered `unconfirmed` keeps no answer, but its query string's parse
(`Parsed`): the same query string asked again (everyone retrying during an outage) is
answered by `check_query` as the view answers a plain lookup (budgets, read, answer, gap,
audit, all of it again), from the query parsed before instead of parsing it again. Parsing
reads the query string alone (and the app's rules), so the query is the one the view would
parse. Such an answer is not kept (`begin` is not read for it: most likely it is
`unconfirmed` again); once it is not `unconfirmed`, the parse goes and the query string's
next lookup is the view's again (parsed, built, kept). Bounded the same way, apart from the
entries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from fallback.breaker import BreakerState, Clock, utc_now
from fallback.lookup.answer import utc_stamp
from fallback.lookup.query import LookupQuery
from fallback.lookup.resilience import Resilience
from fallback.outages import System
from indexer.model import SCHEME_TZ, Invoice
from indexer.store.protocol import StoreUnavailableError
from indexer.store.sqlite import SqliteStore
from verify.access.middleware import key_due
from verify.access.roles import Principal
from verify.http.responses import json_body
from verify.keys import ACCESS
from verify.lookup.taxpayers import CachedRegistry
from verify.lookup.verification import check_query

#: Entries kept at most (each an encoded answer of a kilobyte or two); beyond, all go.
MAX_ENTRIES = 10_000
#: How long a replica answer is sent again at most while the replica's generation holds.
REPLICA_GENERATION_CAP_S = 60.0
#: The primary's health as an entry needs it: a primary answer was built with it healthy.
_HEALTHY = "primary"
#: The breaker in its open period (no maintenance window): replica answers.
_OPEN = "open"
_AS_OF = b'"as_of":"'

Key = tuple[str, str, frozenset[str], str]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A plain lookup's query string and its parse, last answered `unconfirmed`."""

    raw_query: str
    query: LookupQuery


@dataclass(frozen=True, slots=True)
class Begun:
    """What a built answer began from: read before its read."""

    version: int | None  # the store's data (None: not told cheaply, no primary answer kept)
    health: object  # `AnswerReuse._health`
    outages: int
    registry: int
    at: float  # `clock`
    wall: float  # `wall`
    replica: object | None = None  # the replica's generation seen before a replica read


@dataclass(frozen=True, slots=True)
class Kept:
    """An answer to send again, with what each request still needs of it."""

    query: LookupQuery
    invoice: Invoice | None
    target: str  # the audit trail's name of it
    status: str
    source: str
    head: bytes  # the encoded answer; a primary answer's up to its `as_of` value
    tail: bytes | None  # a primary answer's after its `as_of` value; None: `head` is all
    begun: Begun
    until: float  # `clock`



def _next_day(wall: float, scheme: str) -> float:
    """The wall-clock time at which the scheme's next day begins."""
    tz = SCHEME_TZ[scheme]
    today = datetime.fromtimestamp(wall, tz).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), tz).timestamp()


def _split_as_of(body: bytes, stamp: str) -> tuple[bytes, bytes | None]:
    """`body` around its top-level `as_of` value (the first: it comes before `invoice`)."""
    at = body.find(_AS_OF)
    value = stamp.encode()
    start = at + len(_AS_OF)
    if at < 0 or body[start:start + len(value)] != value:
        return body, None
    return body[:start], body[start + len(value):]


class AnswerReuse:
    """The entries of one app (`ANSWER_REUSE`), and the counts of answers reused and built
    (`Metrics.lookup_answers`)."""

    def __init__(self, resilience: Resilience, registry: CachedRegistry, *,
                 replica_seconds: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, stamp_clock: Clock = utc_now) -> None:
        self.resilience = resilience
        self.registry = registry
        self.replica_seconds = replica_seconds
        self._max = max_entries
        #: Injectable: monotonic seconds (how long entries hold) and wall-clock seconds
        #: (where the scheme's day ends).
        self.clock = clock
        self.wall = wall
        self._stamp_clock = stamp_clock
        store = resilience.store
        #: Only a store that tells cheaply that it is unchanged has its answers kept.
        self._version = store.version if isinstance(store, SqliteStore) else None
        self._entries: dict[Key, Kept] = {}
        self._parsed: dict[str, Parsed] = {}  # by query string (parsing ignores the caller)
        self._days: dict[str, tuple[float, float]] = {}  # scheme: its day, wall clock
        self.counts = resilience.metrics.lookup_answers

    # ---- the request path ---------------------------------------------------------------

    def find(self, principal: Principal, raw_query: str) -> Kept | Parsed | None:
        """The entry for this caller's query, if it still holds; else the query string's
        parse, when it was last answered `unconfirmed`."""
        key = (principal.key_id, principal.role.value, principal.scopes, raw_query)
        kept = self._entries.get(key)
        if kept is None:
            return self._parsed.get(raw_query)
        if not self._holds(kept):
            self._entries.pop(key, None)
            return self._parsed.get(raw_query)
        return kept

    def answer_again(self, request: web.Request, principal: Principal,
                     kept: Kept | Parsed) -> Awaitable[web.Response]:
        """`kept` sent again, with the budgets, the audit row and the counts of a built
        answer (`verify.lookup.verification.check_query`); a `Parsed` query built again.
        The awaitable of either (no coroutine around it: every lookup found here)."""
        if isinstance(kept, Parsed):
            return self._built_again(request, kept)
        return self._sent_again(request, principal, kept)

    async def _built_again(self, request: web.Request, parsed: Parsed) -> web.Response:
        checked = await check_query(request, parsed.query)
        self.counts["built"] += 1
        if checked.answer["status"] != "unconfirmed":
            self._parsed.pop(parsed.raw_query, None)
        return json_body(orjson.dumps(checked.answer))

    async def _sent_again(self, request: web.Request, principal: Principal,
                          kept: Kept) -> web.Response:
        access = request.app[ACCESS]
        query = kept.query
        doc_id = query.key.doc_id if query.key else None
        admission = await access.admit(principal, doc_id, key=key_due(request))
        await access.settle(principal, admission, kept.invoice)
        if kept.invoice is None:
            access.spend_miss(principal, kept.target)  # as a built miss: not waited for
        access.audit.record(principal, "verify", kept.target, kept.status, request.remote)
        self.resilience.metrics.answers[(kept.source, kept.status)] += 1
        self.counts["reused"] += 1
        if kept.tail is None:
            body = kept.head
        else:
            body = b"".join((kept.head, utc_stamp(self._stamp_clock()).encode(), kept.tail))
        return json_body(body)

    # ---- building -----------------------------------------------------------------------

    def begin(self) -> Begun | None:
        """Before a plain lookup's answer is built; None: it cannot be kept."""
        journal = self.resilience.journal
        if journal is not None and journal.pending_count:
            return None
        health = self._health()
        version = None
        if health == _HEALTHY:  # a primary answer to come: kept only if the store can tell
            if self._version is None:
                return None
            try:
                version = self._version()
            except StoreUnavailableError:
                return None
        elif health is None or self.replica_seconds <= 0:
            return None
        replica = (None if health == _HEALTHY
                   else self.resilience.replica.seen_generation(self.replica_seconds))
        return Begun(version, health, self.resilience.outages.generation,
                     self.registry.generation, self.clock(), self.wall(), replica)

    def keep(self, begun: Begun, principal: Principal, raw_query: str, query: LookupQuery,
             answer: dict[str, Any], invoice: Invoice | None, target: str,
             body: bytes) -> None:
        """The built answer (as sent: `body`) kept when it may be answered again."""
        self.counts["built"] += 1
        if answer["status"] == "unconfirmed":  # no answer kept; the parse is
            if len(self._parsed) >= self._max:
                self._parsed.clear()
            self._parsed[raw_query] = Parsed(raw_query, query)
            return
        until = self._until(begun, query, answer, invoice)
        if until is None or until <= self.clock():
            return
        source = answer["source"]
        head, tail = (_split_as_of(body, answer["as_of"]) if source == _HEALTHY
                      else (body, None))
        kept = Kept(query, invoice, target, answer["status"], source, head, tail, begun, until)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[(principal.key_id, principal.role.value, principal.scopes,
                       raw_query)] = kept

    def built(self) -> None:
        """An answer built that is not to be kept (a lookup that is not plain)."""
        self.counts["built"] += 1

    def _until(self, begun: Begun, query: LookupQuery, answer: dict[str, Any],
               invoice: Invoice | None) -> float | None:
        """Until when the answer may be sent again (`clock`); None: not at all."""
        if (answer["status"] == "unconfirmed" or "check_count" in answer
                or answer.get("pending_intake") or not self._same_sources(begun)):
            return None
        source, health = answer["source"], begun.health
        if self._health() != health:  # it changed while the answer was built
            return None
        until = begun.at + (self._next_day(begun.wall, query.scheme) - begun.wall)
        if source == _HEALTHY:
            if health != _HEALTHY or begun.version is None:
                return None
        elif (source == "replica" and health != _HEALTHY
              and self.resilience.replica_guard.breaker.state is BreakerState.CLOSED):
            until = min(until, begun.at + (self.replica_seconds if begun.replica is None
                                           else REPLICA_GENERATION_CAP_S))
        else:
            return None
        if invoice is not None and invoice.scheme == "vn" and invoice.seller_tax_id:
            left = self.registry.remaining(invoice.seller_tax_id)
            if left is None or "seller_status" not in answer["invoice"]:
                return None  # the registry could not be read: the next lookup tries again
            until = min(until, self.clock() + left)
        return until

    def _next_day(self, wall: float, scheme: str) -> float:
        """When the scheme's next day begins (wall clock), worked out once a day."""
        day = self._days.get(scheme)
        if day is None or not day[0] <= wall < day[1]:
            ends = _next_day(wall, scheme)
            day = self._days[scheme] = (ends - 86_400.0, ends)
        return day[1]

    # ---- what holds ---------------------------------------------------------------------

    def _same_sources(self, begun: Begun) -> bool:
        journal = self.resilience.journal
        return ((journal is None or not journal.pending_count)
                and self.resilience.outages.generation == begun.outages
                and self.registry.generation == begun.registry)

    def _health(self) -> object:
        """The primary's health as it decides where answers come from: `_HEALTHY`, the
        maintenance window's id, `_OPEN`, or None when it is changing (a trial call due)."""
        resilience = self.resilience
        maintenance = resilience.outages.active(System.PRIMARY)
        if maintenance is not None:
            return maintenance.id
        breaker = resilience.primary.breaker
        if breaker.state is BreakerState.CLOSED:
            return _HEALTHY
        return _OPEN if breaker.probing_early else None

    def _holds(self, kept: Kept) -> bool:
        if self.clock() >= kept.until or not self._same_sources(kept.begun):
            return False
        resilience = self.resilience
        if self._health() != kept.begun.health:
            return False
        if kept.source != _HEALTHY:
            if resilience.replica_guard.breaker.state is not BreakerState.CLOSED:
                return False
            # asked even for an entry kept without a generation: asking keeps it read
            current = resilience.replica.seen_generation(self.replica_seconds)
            return kept.begun.replica is None or current == kept.begun.replica
        try:
            if self._version is None or self._version() != kept.begun.version:
                return False
        except StoreUnavailableError:
            return False  # the lookup goes the normal way, which falls back
        query = kept.query
        return kept.invoice is not None or resilience.outages.miss_window(
            query.scheme, query.match.issued_on, resilience.intake_lag) is None


#: The app's reused answers; absent when `INVOICE_ANSWER_REUSE` is off.
ANSWER_REUSE = web.AppKey("answer_reuse", AnswerReuse)
