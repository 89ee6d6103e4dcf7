"""Intake through the durable journal: nothing acknowledged is lost, whatever is down.

`JournaledIntake.submit` is what `POST /api/v1/packages` calls:

1. A package id already in the journal is answered from there (its final notice once
   applied, its queued notice while pending); a different body under the same id is a 409.
2. With the primary usable (no maintenance window of it in force, breaker closed or trying,
   and nothing older still pending in the journal, so packages reach the primary in the
   order they came): append to the journal (fsync), apply to the primary through `Intake`,
   mark the entry applied, answer the final notice (200).
3. Otherwise, or when the primary fails while applying: the package is kept in the journal
   with a *queued* notice (202): step-1 rules decided, chain rules evaluated against the
   replica and the journal as warnings; the invoices it creates or changes go to the replica
   and stay answerable from the journal (`pending_intake`), never as gaps. The reconciler
   (`fallback.reconciler`) applies it when the primary is back.
4. Neither the primary nor the journal can take it: `IntakeUnavailableError`, answered 503
   with Retry-After. Never a silent drop.

Failures while applying are of two kinds (`TRANSIENT`): the primary unavailable or too slow,
which says nothing about the package (it stays pending, retried later, in order), and
anything else, which does: an entry that raised anything else is applied alone, again, up
to `max_attempts` times in all (each failure counted in the journal, so across restarts),
then quarantined with a final rejection (`package.unprocessable`, the error's class in its
details, the traceback in the log). A quarantined entry blocks nothing; an operator retries
or drops it (docs/journal.md). So no package, whatever it holds, can wedge the journal.

`apply_entry` applies one journal entry to the primary exactly as a fresh post would be
(the body parsed again, signatures checked again, every rule run against the primary, the
receipt time kept). It is idempotent: a package the primary already holds is answered by
the primary's notice, so an entry applied twice (a crash between the primary's commit and
`mark_applied`) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fallback.breaker import Clock, utc_now
from fallback.health import DependencyGuard
from fallback.outages import OutageLog, System
from fallback.replica import Replica, ReplicaUnavailable, WriteThrough
from fallback.replica_docs import replica_doc
from indexer.codec import invoice_from_doc
from indexer.intake import YIELD_EVERY, BatchItem, Intake, IntakeResult
from indexer.journal import EntryState, IntakeJournal, JournalEntry, JournalUnavailableError
from indexer.model import Invoice
from indexer.package import PackageError
from indexer.rules import Violation
from indexer.signature import TrustAnchors
from indexer.store.protocol import StoreUnavailableError
from indexer.submission import Submission, read_submission, signature_violations

log = logging.getLogger("fallback.intake")


def _describe(exc: BaseException) -> str:
    """`Class: message`, what the journal keeps as an entry's `last_error`."""
    return f"{type(exc).__name__}: {exc}"


#: The primary could not take an entry now: it stays pending and is retried later, in order.
#: Every other exception while applying an entry counts towards its quarantine.
TRANSIENT: tuple[type[Exception], ...] = (StoreUnavailableError, TimeoutError)
#: The rule of the final notice of a quarantined entry.
UNPROCESSABLE = "package.unprocessable"


def unprocessable(entry: JournalEntry, error: str) -> dict[str, Any]:
    """The final notice of an entry set aside: `error` is the class of what it raised."""
    return _refusal(entry, PackageError(
        UNPROCESSABLE, "the package could not be applied and was set aside for an operator "
        "(it blocks no other package); post it again under a new package id, or wait for "
        "the operator to retry it", details={"error": error, "attempts": entry.attempts}))


def _error_class(last_error: str | None) -> str:
    return (last_error or "unknown").partition(":")[0] or "unknown"


def _refusal(entry: JournalEntry, exc: PackageError) -> dict[str, Any]:
    return {"package_id": entry.package_id, "sender": entry.sender,
            "received_at": entry.received_at.isoformat().replace("+00:00", "Z"),
            "result": "rejected", "accepted": 0,
            "error": {"code": exc.code, "message": exc.message, "details": exc.details}}


class UnreadableEntryError(Exception):
    """A journal row this release cannot read (`JournalEntry.unreadable`): never applied,
    quarantined after its attempts like any entry that fails."""


class IntakeUnavailableError(Exception):
    """Neither the primary nor the local journal can take a package now."""


@dataclass(frozen=True, slots=True)
class Outcome:
    notice: dict[str, Any]
    replayed: bool
    queued: bool  # in the journal, waiting for the primary (HTTP 202)


class ReplicaReads:
    """`InvoiceReads` without the primary: the journal's pending state first, then the
    replica. A replica that cannot answer knows nothing (its findings are warnings only)."""

    def __init__(self, journal: IntakeJournal, replica: Replica) -> None:
        self.journal = journal
        self.replica = replica

    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]:
        found: dict[str, Invoice] = {}
        for doc_id in doc_ids:
            pending = self.journal.pending_doc(doc_id)
            doc = pending.doc if pending else await self._replica_doc(doc_id)
            if doc is not None:
                found[doc_id] = invoice_from_doc(doc)
        return found

    async def existing_authority_codes(self, codes: Iterable[str]) -> set[str]:
        taken: set[str] = set()
        for code in codes:
            if self.journal.pending_doc_by_code(code) is not None:
                taken.add(code)
                continue
            try:
                if await self.replica.get_by_authority_code(code) is not None:
                    taken.add(code)
            except ReplicaUnavailable:
                continue
        return taken

    async def _replica_doc(self, doc_id: str) -> dict[str, Any] | None:
        try:
            return await self.replica.get(doc_id)
        except ReplicaUnavailable:
            return None


class JournaledIntake:
    def __init__(self, intake: Intake, journal: IntakeJournal, replica: Replica,
                 primary: DependencyGuard, outages: OutageLog, *, anchors: TrustAnchors,
                 max_items: int, write_timeout: float, max_attempts: int = 3,
                 clock: Clock = utc_now) -> None:
        self.intake = intake
        self.journal = journal
        self.replica = replica
        self.primary = primary
        self.outages = outages
        self.anchors = anchors
        self.max_items = max_items
        self.write_timeout = write_timeout
        if max_attempts < 1:
            raise ValueError("an entry is tried at least once before it is quarantined")
        self.max_attempts = max_attempts
        self.clock = clock
        self.reads = ReplicaReads(journal, replica)
        # One submission at a time: journal order is the order packages reach the primary.
        self._lock = asyncio.Lock()

    def primary_usable(self) -> bool:
        return self.outages.active(System.PRIMARY) is None and self.primary.allow()

    async def signatures(self, submission: Submission) -> dict[int, list[Violation]]:
        """Seller XML-DSig checks off the event loop (milliseconds per invoice); with trust
        anchors set, a JSON package (no originals) is checked too: it is refused unsigned."""
        if not self.anchors.enabled:
            return {}
        return await asyncio.get_running_loop().run_in_executor(
            None, signature_violations, submission, self.anchors, self.intake.rules)

    async def submit(self, submission: Submission,
                     extra: Mapping[int, list[Violation]]) -> Outcome:
        package = submission.package
        async with self._lock:
            entry = await self._journaled(package.package_id)
            if entry is not None:
                return await self._replay(entry, submission)
            now = self.clock()
            # pending first: `primary_usable` takes a half-open breaker's trial slot
            if self.journal.pending_count == 0 and self.primary_usable():
                return await self._direct(submission, extra, now)
            return await self._queue(submission, extra, now, seq=None)

    async def _journaled(self, package_id: str) -> JournalEntry | None:
        try:
            return await self.journal.get(package_id)
        except Exception as exc:  # an unreadable journal must not stop a healthy primary
            log.error("intake journal unreadable", extra={"error": repr(exc)})
            return None

    async def _replay(self, entry: JournalEntry, submission: Submission) -> Outcome:
        if entry.digest != submission.package.digest:
            raise PackageError(
                "package.id_conflict",
                "this package id was already used for a package with different content",
                status=409, details={"package_id": entry.package_id,
                                     "received_at": entry.received_at.isoformat()})
        if entry.notice is not None and entry.state != EntryState.PENDING:
            # applied, or quarantined: its final notice until an operator retries it
            return Outcome(entry.notice, replayed=True, queued=False)
        if self.journal.pending_count <= 1 and self.primary_usable():
            try:  # the only pending entry, interrupted before: finish it now
                notice = await self.settle(entry)
            except TRANSIENT as exc:
                await self.primary.failed(f"{type(exc).__name__}: {exc}")
            except BaseException:
                self.primary.abandoned()  # no verdict on the primary: free the trial slot
                raise
            else:
                await self.primary.succeeded()
                return Outcome(notice, replayed=True, queued=False)
        if entry.notice is not None:
            return Outcome(entry.notice, replayed=True, queued=True)
        provisional = await self.intake.provisional(
            submission.package, self.reads, await self.signatures(submission),
            received_at=entry.received_at)
        return Outcome(provisional.notice, replayed=True, queued=True)

    async def _direct(self, submission: Submission, extra: Mapping[int, list[Violation]],
                      now: datetime) -> Outcome:
        package = submission.package
        seq: int | None
        try:
            seq = await self.journal.append(submission, now)
        except JournalUnavailableError as exc:
            # The primary is durable on its own; the journal only loses its copy.
            log.error("intake journal unwritable; applying to the primary directly",
                      extra={"error": str(exc), "package_id": package.package_id})
            seq = None
        try:
            async with asyncio.timeout(self.write_timeout):
                result: IntakeResult = await self.intake.ingest(
                    package, submission.originals, extra, received_at=now)
        except PackageError:
            self.primary.abandoned()  # no verdict on the primary: free the trial slot
            if seq is not None:
                await self.journal.discard(seq)
            raise
        except TRANSIENT as exc:
            await self.primary.failed(_describe(exc))
            if seq is None:
                raise IntakeUnavailableError(
                    "the primary index failed and the intake journal is unwritable") from exc
            log.warning("primary failed during intake; the package is queued in the journal",
                        extra={"package_id": package.package_id, "error": repr(exc)})
            return await self._queue(submission, extra, now, seq=seq)
        except Exception as exc:
            self.primary.abandoned()  # the package's fault, not the primary's
            if seq is None:
                raise
            log.exception("applying a package failed; it is retried, then set aside",
                          extra={"package_id": package.package_id, "seq": seq})
            return await self._settle_failed(seq, exc, submission, extra, now)
        except BaseException:
            self.primary.abandoned()
            raise
        await self.primary.succeeded()
        if seq is not None:
            try:
                await self.journal.mark_applied(seq, result.notice, self.clock())
            except Exception:  # the drain finds it applied in the primary and marks it then
                log.exception("could not mark a journal entry applied", extra={"seq": seq})
        return Outcome(result.notice, replayed=result.replayed, queued=False)

    async def _queue(self, submission: Submission, extra: Mapping[int, list[Violation]],
                     now: datetime, *, seq: int | None) -> Outcome:
        provisional = await self.intake.provisional(submission.package, self.reads, extra,
                                                    received_at=now)
        docs = [replica_doc(invoice) for invoice in provisional.invoices]
        try:
            if seq is None:
                await self.journal.append(submission, now, notice=provisional.notice,
                                          pending_docs=docs)
            elif not await self.journal.set_provisional(seq, provisional.notice, docs, now):
                applied = await self.journal.get(submission.package.package_id)
                if applied is not None and applied.notice is not None:
                    # another process's reconciler applied it meanwhile: that is the answer
                    return Outcome(applied.notice, replayed=False, queued=False)
        except (JournalUnavailableError, OSError) as exc:
            raise IntakeUnavailableError(
                "the primary index is unavailable and the intake journal is unwritable"
            ) from exc
        if docs:
            try:
                await self.replica.put_many(docs)
            except ReplicaUnavailable:
                log.warning("replica unavailable; queued invoices answer from the journal")
        return Outcome(provisional.notice, replayed=False, queued=True)

    async def _settle_failed(self, seq: int, exc: Exception, submission: Submission,
                             extra: Mapping[int, list[Violation]], now: datetime) -> Outcome:
        """The direct path's apply raised `exc` (not transient): count it, then `settle`."""
        await self.journal.note_failure(seq, _describe(exc))
        entry = await self.journal.entry(seq)
        if entry is None or entry.state is not EntryState.PENDING:  # another process did
            return Outcome(entry.notice if entry is not None and entry.notice is not None
                           else {}, replayed=False, queued=False)
        try:
            notice = await self.settle(entry)
        except TRANSIENT as failed:  # the primary went away meanwhile: the entry waits
            await self.primary.failed(_describe(failed))
            return await self._queue(submission, extra, now, seq=seq)
        return Outcome(notice, replayed=False, queued=False)

    async def settle(self, entry: JournalEntry) -> dict[str, Any]:
        """Apply one pending entry alone, its final notice: an exception other than
        `TRANSIENT` is counted and the entry tried again at once, until it has failed
        `max_attempts` times (its count so far is in the journal), when it is quarantined
        with an `unprocessable` notice. `TRANSIENT` failures propagate (the entry stays
        pending, nothing counted)."""
        current = entry
        while current.attempts < self.max_attempts:
            try:
                return await self.apply_entry(current)
            except TRANSIENT:
                raise
            except Exception as exc:
                log.exception("applying a journal entry failed",
                              extra={"package_id": entry.package_id, "seq": entry.seq,
                                     "attempts": current.attempts + 1})
                await self.journal.note_failure(entry.seq, _describe(exc))
            fresh = await self.journal.entry(entry.seq)
            if fresh is None or fresh.state is not EntryState.PENDING:
                # settled meanwhile by another process: its notice stands
                return (fresh.notice if fresh is not None and fresh.notice is not None
                        else unprocessable(current, _error_class(current.last_error)))
            current = fresh
        return await self._quarantine(current)

    async def _quarantine(self, entry: JournalEntry) -> dict[str, Any]:
        notice = unprocessable(entry, _error_class(entry.last_error))
        provisional_ids = await self.journal.pending_doc_ids(entry.seq)
        if await self.journal.quarantine(entry.seq, notice, self.clock()):
            log.error("journal entry quarantined after %d failed attempts", entry.attempts,
                      extra={"package_id": entry.package_id, "seq": entry.seq,
                             "error": entry.last_error})
            await self._settle_replica(provisional_ids)
            return notice
        fresh = await self.journal.entry(entry.seq)
        return fresh.notice if fresh is not None and fresh.notice is not None else notice

    async def apply_entry(self, entry: JournalEntry) -> dict[str, Any]:
        """Apply one journal entry to the primary; its final notice (`apply_entries`)."""
        return (await self.apply_entries([entry]))[0]

    async def apply_entries(self, entries: Sequence[JournalEntry]) -> list[dict[str, Any]]:
        """Apply journal entries to the primary, in order, in one batch (one commit on
        SQLite: `Intake.ingest_many`); their final notices. Raises `StoreUnavailableError` /
        `TimeoutError` when the primary fails (the entries stay pending). An entry the
        primary refuses as a whole (its id taken by another package meanwhile, a body
        today's limits refuse) is closed with a rejection notice: it was acknowledged as
        queued, so it is answered, not dropped silently."""
        notices: dict[int, dict[str, Any]] = {}
        written: set[str] = set()  # written through to the replica after the commit
        batch: list[tuple[JournalEntry, BatchItem]] = []
        for n, entry in enumerate(entries, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a batch is thousands of entries: let lookups in
            if entry.unreadable is not None:
                raise UnreadableEntryError(f"journal entry {entry.seq}: {entry.unreadable}")
            try:
                submission = read_submission(entry.body, entry.format,
                                             max_items=self.max_items, digest=entry.digest)
            except PackageError as exc:
                notices[entry.seq] = _refusal(entry, exc)
                continue
            batch.append((entry, BatchItem(submission.package, entry.received_at,
                                           submission.originals,
                                           await self.signatures(submission))))
        if batch:
            hook = self.intake.after_commit
            through = (hook if isinstance(hook, WriteThrough) and hook.replica is self.replica
                       else None)
            failures = through.failures if through is not None else 0
            # No timeout of our own here: cancelling a commit midway is what leaves half
            # of it behind on Elasticsearch; the store's clients bound every request.
            results = await self.intake.ingest_many([item for _, item in batch])
            for (entry, _), result in zip(batch, results, strict=True):
                if isinstance(result, PackageError):
                    notices[entry.seq] = _refusal(entry, result)
                else:
                    notices[entry.seq] = result.notice
                    written |= result.written
            if through is None or through.failures != failures:
                written.clear()  # not known to be in this replica: settle every one
        provisional_ids = await self.journal.pending_doc_ids_many([e.seq for e in entries])
        ordered = [(e.seq, notices[e.seq]) for e in entries]
        await self.journal.mark_applied_many(ordered, self.clock())
        # What the intake wrote through after its commit is the primary's state already.
        await self._settle_replica([d for d in provisional_ids if d not in written])
        return [notice for _, notice in ordered]

    async def _settle_replica(self, doc_ids: list[str]) -> None:
        """The replica held the queued state of these invoices: replace it with the
        primary's (an invoice the primary refused in the end leaves the replica)."""
        if not doc_ids:
            return
        final = await self.intake.store.get_invoices(doc_ids)
        try:
            if final:
                await self.replica.put_many(replica_doc(i) for i in final.values())
            gone = [d for d in doc_ids if d not in final]
            if gone:
                await self.replica.delete_many(gone)
        except ReplicaUnavailable:
            log.warning("replica unavailable; queued invoices were not settled in it",
                        extra={"invoices": len(doc_ids)})
