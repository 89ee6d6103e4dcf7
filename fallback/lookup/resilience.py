"""Where a lookup is answered from, and what a miss means (docs/outages.md#the-four-states).

`Resilience.answer(query, ...)` answers every key form (lookups, QR, batch): `look_up` reads
(no side effect but the breakers' view of health), then `conclude` builds the answer and
records a gap for a miss that cannot be confirmed. `verify_query` calls the two apart, so
the read can overlap the caller's budget check and a refused caller records nothing. The
primary answers unless it is unhealthy: a declared maintenance window of the
primary in force, its breaker open, or the call failing (`StoreUnavailableError` or the
request-path timeout). Then the replica answers (`source: replica`, `degraded: true`, `as_of`
= when the replica copy was written if it says, else now), and a replica miss, or a replica
that is down too, is `unconfirmed` with a gap (`primary_down`), never `not_found`.

A miss from a healthy primary is `not_found` unless an upstream outage window hides it
(`upstream_outage`) or the caller's `issued_on` lies within the intake lag of now
(`intake_lag`): then it is `unconfirmed` with a gap too.

Misses repeat (everyone retrying in an outage), and for a moment (`moment_s`, 1 s by default)
this path remembers what they teach: the `unconfirmed` answer of a key (built once; each
miss gets a copy with its own `as_of` and `gap_id`), and that the replica lacked a key (not
read again: a miss is `unconfirmed` anyway, and "not there" a moment ago is as honest; what
this process takes in during an outage is answered from its journal first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from fallback.breaker import Clock, utc_now
from fallback.gaps import GapLedger, GapReason, GapRequest
from fallback.health import DependencyGuard, Metrics
from fallback.lookup.answer import Summaries, build_answer, utc_stamp
from fallback.lookup.fetch import CodeOwners, fetch_invoice
from fallback.lookup.moment import MomentMemo
from fallback.lookup.query import LookupQuery
from fallback.outages import OutageLog, System
from fallback.replica import Replica, ReplicaUnavailable
from fallback.replica_docs import ReplicaHit
from indexer.codec import invoice_from_doc
from indexer.journal import PendingDoc
from indexer.keys import VnKey
from indexer.model import Invoice
from indexer.store import InvoiceStore
from indexer.store.protocol import StoreUnavailableError

log = logging.getLogger("fallback.lookup")
T = TypeVar("T")
#: How long a miss's answer and a replica's "not there" are remembered by default.
MOMENT_S = 1.0


class PendingSource(Protocol):
    """The intake journal's pending state (`indexer.journal.IntakeJournal`)."""

    @property
    def pending_count(self) -> int: ...

    def pending_doc(self, doc_id: str) -> PendingDoc | None: ...

    def pending_doc_by_code(self, code: str) -> PendingDoc | None: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    invoice: Invoice | None
    source: str  # primary | replica
    degraded: bool
    as_of: datetime
    outage_id: int | None = None  # the maintenance or detected window behind a degraded read
    pending: bool = False  # the state of a pending journal entry (not yet in the primary)


class Resilience:
    def __init__(self, store: InvoiceStore, replica: Replica, primary: DependencyGuard,
                 replica_guard: DependencyGuard, outages: OutageLog, gaps: GapLedger, *,
                 primary_timeout: float, intake_lag: timedelta, metrics: Metrics | None = None,
                 clock: Clock = utc_now, journal: PendingSource | None = None,
                 moment_s: float = MOMENT_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.replica = replica
        self.primary = primary
        self.replica_guard = replica_guard
        self.outages = outages
        self.gaps = gaps
        self.primary_timeout = primary_timeout
        self.intake_lag = intake_lag
        self.metrics = metrics or Metrics()
        self._clock = clock
        self.journal = journal
        #: This lookup path's own memos (not the process's: one per app; the replica keeps
        #: its decoded documents itself).
        self.code_owners = CodeOwners()
        self.summaries = Summaries()
        #: The unconfirmed answer of each miss of the moment (`_unconfirmed`), and how many
        #: misses took a copy of one instead of building their own.
        self._unconfirmed_now: MomentMemo[tuple[Any, ...], dict[str, Any]] = MomentMemo(
            moment_s, monotonic)
        self.shared_answers = 0
        #: Lookup keys the replica did not hold when read within the moment, and how many
        #: replica reads that spared.
        self._replica_lacks: MomentMemo[str, bool] = MomentMemo(moment_s, monotonic)
        self.replica_reads_spared = 0

    async def fetch(self, query: LookupQuery) -> Fetched:
        maintenance = self.outages.active(System.PRIMARY)
        if maintenance is not None:
            return await self._from_replica(query, maintenance.id)
        if not self.primary.allow():
            return await self._from_replica(query, None)
        try:
            # SQLite's point reads run on the loop without ever suspending (unless it paused
            # them after one held the loop: `indexer/store/sqlite.py`): a timeout armed around
            # such a read could never fire, so none is armed (about 8 us per lookup).
            if self.store.reads_inline:
                invoice = await fetch_invoice(self.store, query, self.code_owners)
            else:
                async with asyncio.timeout(self.primary_timeout):
                    invoice = await fetch_invoice(self.store, query, self.code_owners)
        except asyncio.CancelledError:
            self.primary.abandoned()
            raise
        except (StoreUnavailableError, TimeoutError) as exc:
            await self.primary.failed(f"{type(exc).__name__}: {exc}")
            return await self._from_replica(query, None)
        await self.primary.succeeded()
        return Fetched(invoice, "primary", False, self._clock())

    async def _from_replica(self, query: LookupQuery, outage_id: int | None) -> Fetched:
        now = self._clock()
        if outage_id is None:
            detected = self.outages.detected(System.PRIMARY)
            outage_id = detected.id if detected else None
        hit: ReplicaHit | None = None
        lookup_key = query.lookup_key
        if self._replica_lacks.get(lookup_key):
            self.replica_reads_spared += 1
            return Fetched(None, "replica", True, now, outage_id)
        if self.replica_guard.allow():
            try:
                if query.key is not None:
                    hit = await self.replica.get_invoice(query.key.doc_id)
                else:
                    assert query.authority_code is not None
                    hit = await self.replica.get_invoice_by_code(query.authority_code)
            except asyncio.CancelledError:
                self.replica_guard.abandoned()
                raise
            except ReplicaUnavailable as exc:
                await self.replica_guard.failed(str(exc))
            else:
                await self.replica_guard.succeeded()
                if hit is None:
                    self._replica_lacks.put(lookup_key, True)
        if hit is None:
            return Fetched(None, "replica", True, now, outage_id)
        return Fetched(hit.invoice, "replica", True, hit.written_at or now, outage_id)

    def _miss_reason(self, query: LookupQuery,
                     fetched: Fetched) -> tuple[GapReason, int | None] | None:
        if fetched.degraded:
            return GapReason.PRIMARY_DOWN, fetched.outage_id
        why = self.outages.miss_window(query.scheme, query.match.issued_on, self.intake_lag,
                                       self._clock())
        return None if why is None else (why.reason, why.outage_id)

    def _pending(self, query: LookupQuery) -> Fetched | None:
        """An invoice a pending journal entry creates or changes: its pending state is newer
        than anything the primary or the replica holds
        (docs/outages.md#answers-from-the-intake-journal)."""
        journal = self.journal
        if journal is None or not journal.pending_count:
            return None
        pending = (journal.pending_doc(query.key.doc_id) if query.key is not None
                   else journal.pending_doc_by_code(query.authority_code or ""))
        if pending is None:
            return None
        return Fetched(invoice_from_doc(pending.doc), "replica", True, pending.received_at,
                       pending=True)

    def is_pending(self, doc_id: str) -> bool:
        """The intake journal holds a state of this invoice the primary does not have yet."""
        journal = self.journal
        return (journal is not None and journal.pending_count > 0
                and journal.pending_doc(doc_id) is not None)

    async def primary_read(self, read: Callable[[], Awaitable[T]]) -> T | None:
        """`read()` on the primary under the lookups' guard, or None when it cannot be read
        now: a declared maintenance window, its breaker open, or the read failing or timing
        out (which the breaker counts, as for a lookup). For reads other than a lookup's
        (a ledger's batched reads and scans)."""
        if self.outages.active(System.PRIMARY) is not None or not self.primary.allow():
            return None
        try:
            async with asyncio.timeout(self.primary_timeout):
                result = await read()
        except asyncio.CancelledError:
            self.primary.abandoned()
            raise
        except (StoreUnavailableError, TimeoutError) as exc:
            await self.primary.failed(f"{type(exc).__name__}: {exc}")
            return None
        await self.primary.succeeded()
        return result

    async def answer(self, query: LookupQuery, requester: str,
                     callback_url: str | None = None) -> tuple[dict[str, Any], Invoice | None]:
        return await self.conclude(query, await self.look_up(query), requester, callback_url)

    async def look_up(self, query: LookupQuery) -> Fetched:
        """What the journal, the primary or the replica holds for `query`. Records nothing
        but what the read taught about the primary's and the replica's health, so it may run
        before the caller's budgets are known (`verify.lookup.verification`, the HTTP layer)."""
        return self._pending(query) or await self.fetch(query)

    async def conclude(self, query: LookupQuery, fetched: Fetched, requester: str,
                       callback_url: str | None = None,
                       ) -> tuple[dict[str, Any], Invoice | None]:
        """The answer to `query` from what `look_up` found; a miss that cannot be confirmed
        records its gap here (once the caller was admitted)."""
        invoice = fetched.invoice
        why = None if invoice is not None else self._miss_reason(query, fetched)
        if why is not None:
            answer = await self._unconfirmed(query, fetched, why, requester, callback_url)
            self.metrics.gaps[str(why[0])] += 1
        else:
            answer = build_answer(query, invoice, source=fetched.source,
                                  degraded=fetched.degraded, as_of=fetched.as_of,
                                  summaries=self.summaries)
            if fetched.pending:
                answer["pending_intake"] = True
        self.metrics.answers[(fetched.source, answer["status"])] += 1
        return answer, invoice

    async def _unconfirmed(self, query: LookupQuery, fetched: Fetched,
                           why: tuple[GapReason, int | None], requester: str,
                           callback_url: str | None) -> dict[str, Any]:
        """A miss that cannot be confirmed: its gap recorded, the answer carrying its id.
        Misses of one key at one moment (everyone retrying during an outage) share the
        answer: the first builds it, the others of the moment take a copy with their own
        `as_of`; each one's ask is still recorded (`fallback.gaps`)."""
        shape = (query, fetched.source, fetched.degraded, why)
        built = self._unconfirmed_now.get(shape)
        if built is None:
            built = build_answer(query, None, source=fetched.source,
                                 degraded=fetched.degraded, as_of=fetched.as_of)
            built["status"] = "unconfirmed"
            built["reason"] = str(why[0])
            self._unconfirmed_now.put(shape, built)
            answer = _copy(built)
        else:
            self.shared_answers += 1
            answer = _copy(built)
            answer["as_of"] = utc_stamp(fetched.as_of)
        answer["gap_id"] = await self._record_gap(query, why[0], why[1], requester,
                                                  callback_url)
        return answer

    async def _record_gap(self, query: LookupQuery, reason: GapReason, outage_id: int | None,
                          requester: str, callback_url: str | None) -> str | None:
        key = query.key
        request = GapRequest(
            lookup_key=query.lookup_key,
            scheme=query.scheme, key=query.asked(),
            seller_tax_id=key.seller_tax_id if isinstance(key, VnKey) else None,
            reason=reason, requester=requester, callback_url=callback_url,
            issued_on=query.match.issued_on, outage_id=outage_id)
        try:
            return await self.gaps.record_id(request)
        except Exception:  # the answer is still honest without an id; never a 5xx for it
            log.exception("could not record a gap", extra={"lookup_key": request.lookup_key})
            return None



def _copy(answer: dict[str, Any]) -> dict[str, Any]:
    """A caller's own copy of a remembered unconfirmed answer (its parts that get changed)."""
    return {**answer, "key": dict(answer["key"]), "mismatches": [], "related": []}
