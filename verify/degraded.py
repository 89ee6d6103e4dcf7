"""Where a lookup is answered from, and what a miss means (README "Outages").

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
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from fallback.breaker import Clock, utc_now
from fallback.gaps import GapLedger, GapReason, GapRequest
from fallback.health import DependencyGuard, Metrics
from fallback.outages import OutageLog, System, day_bounds
from fallback.replica import DecodedInvoices, Replica, ReplicaUnavailable
from indexer.codec import invoice_from_doc
from indexer.journal import PendingDoc
from indexer.keys import VnKey
from indexer.model import Invoice
from indexer.store import InvoiceStore
from indexer.store.protocol import StoreUnavailableError
from verify.answer import Summaries, build_answer
from verify.lookup import CodeOwners, LookupQuery, fetch_invoice, reads_inline

log = logging.getLogger("verify.degraded")

#: Fields a replica document may carry to say when it was written (else `as_of` is now).
_WRITTEN_AT_FIELDS = ("replicated_at", "written_at")


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


def _written_at(doc: dict[str, Any]) -> datetime | None:
    for name in _WRITTEN_AT_FIELDS:
        value = doc.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


class Resilience:
    def __init__(self, store: InvoiceStore, replica: Replica, primary: DependencyGuard,
                 replica_guard: DependencyGuard, outages: OutageLog, gaps: GapLedger, *,
                 primary_timeout: float, intake_lag: timedelta, metrics: Metrics | None = None,
                 clock: Clock = utc_now, journal: PendingSource | None = None) -> None:
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
        #: This lookup path's own memos (not the process's: one per app).
        self.code_owners = CodeOwners()
        self.decoded = DecodedInvoices()
        self.summaries = Summaries()

    async def fetch(self, query: LookupQuery) -> Fetched:
        maintenance = self.outages.active(System.PRIMARY)
        if maintenance is not None:
            return await self._from_replica(query, maintenance.id)
        if not self.primary.allow():
            return await self._from_replica(query, None)
        try:
            if reads_inline(self.store):  # never suspends: a timer could not fire in it
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
        doc = None
        if self.replica_guard.allow():
            try:
                if query.key is not None:
                    doc = await self.replica.get(query.key.doc_id)
                else:
                    assert query.authority_code is not None
                    doc = await self.replica.get_by_authority_code(query.authority_code)
            except asyncio.CancelledError:
                self.replica_guard.abandoned()
                raise
            except ReplicaUnavailable as exc:
                await self.replica_guard.failed(str(exc))
            else:
                await self.replica_guard.succeeded()
        invoice = None
        if doc is not None:
            try:
                invoice = self.decoded.decode(doc)
            except (KeyError, ValueError, TypeError):  # a stale document shape is a miss
                log.warning("unreadable replica document", extra={"doc": doc.get("doc_id")})
        as_of = (_written_at(doc) if doc is not None and invoice is not None else None) or now
        return Fetched(invoice, "replica", True, as_of, outage_id)

    def _miss_reason(self, query: LookupQuery,
                     fetched: Fetched) -> tuple[GapReason, int | None] | None:
        if fetched.degraded:
            return GapReason.PRIMARY_DOWN, fetched.outage_id
        issued_on = query.match.issued_on
        now = self._clock()
        window = self.outages.upstream_hides(query.scheme, issued_on, self.intake_lag, now)
        if window is not None:
            return GapReason.UPSTREAM_OUTAGE, window.id
        if issued_on is not None and _within_lag(issued_on, query.scheme, now,
                                                 self.intake_lag):
            return GapReason.INTAKE_LAG, None
        return None

    def _pending(self, query: LookupQuery) -> Fetched | None:
        """An invoice a pending journal entry creates or changes: its pending state is newer
        than anything the primary or the replica holds (README "Outages")."""
        journal = self.journal
        if journal is None or not journal.pending_count:
            return None
        pending = (journal.pending_doc(query.key.doc_id) if query.key is not None
                   else journal.pending_doc_by_code(query.authority_code or ""))
        if pending is None:
            return None
        return Fetched(invoice_from_doc(pending.doc), "replica", True, pending.received_at,
                       pending=True)

    async def answer(self, query: LookupQuery, requester: str,
                     callback_url: str | None = None) -> tuple[dict[str, Any], Invoice | None]:
        return await self.conclude(query, await self.look_up(query), requester, callback_url)

    async def look_up(self, query: LookupQuery) -> Fetched:
        """What the journal, the primary or the replica holds for `query`. Records nothing
        but what the read taught about the primary's and the replica's health, so it may run
        before the caller's budgets are known (`verify.verification`)."""
        return self._pending(query) or await self.fetch(query)

    async def conclude(self, query: LookupQuery, fetched: Fetched, requester: str,
                       callback_url: str | None = None,
                       ) -> tuple[dict[str, Any], Invoice | None]:
        """The answer to `query` from what `look_up` found; a miss that cannot be confirmed
        records its gap here (once the caller was admitted)."""
        invoice = fetched.invoice
        answer = build_answer(query, invoice, source=fetched.source,
                              degraded=fetched.degraded, as_of=fetched.as_of,
                              summaries=self.summaries)
        if fetched.pending:
            answer["pending_intake"] = True
        if invoice is None:
            why = self._miss_reason(query, fetched)
            if why is not None:
                answer["status"] = "unconfirmed"
                answer["reason"] = str(why[0])
                answer["gap_id"] = await self._record_gap(query, why[0], why[1], requester,
                                                          callback_url)
                self.metrics.gaps[str(why[0])] += 1
        self.metrics.answers[(fetched.source, answer["status"])] += 1
        return answer, invoice

    async def _record_gap(self, query: LookupQuery, reason: GapReason, outage_id: int | None,
                          requester: str, callback_url: str | None) -> str | None:
        key = query.key
        request = GapRequest(
            lookup_key=key.doc_id if key else f"authority_code:{query.authority_code}",
            scheme=query.scheme, key=query.asked(),
            seller_tax_id=key.seller_tax_id if isinstance(key, VnKey) else None,
            reason=reason, requester=requester, callback_url=callback_url,
            issued_on=query.match.issued_on, outage_id=outage_id)
        try:
            gap = await self.gaps.record(request)
        except Exception:  # the answer is still honest without an id; never a 5xx for it
            log.exception("could not record a gap", extra={"lookup_key": request.lookup_key})
            return None
        return gap.id


def _within_lag(issued_on: date, scheme: str, now: datetime, lag: timedelta) -> bool:
    """The caller says the invoice was issued on a day that overlaps the last `lag`."""
    start, end = day_bounds(issued_on, scheme)
    return start <= now and end > now - lag
