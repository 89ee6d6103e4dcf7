"""The reconciler: after an outage, make everything whole again (docs/outages.md#the-reconciler).

One run (`Reconciler.run`), in this order, each step idempotent so a run can be killed at
any point and simply started again:

1. **Drain the intake journal** into the primary, oldest entry first, a batch at a time
   (`batch` entries, fewer when their bodies pass `batch_bytes`) through
   `JournaledIntake.apply_entries` (every rule re-run against the primary, receipt time
   kept, one commit per batch on SQLite; a package the primary already holds is answered
   from it, so nothing is applied twice). Large batches spread each commit's fixed costs
   (round trips to SQLite's thread, the fsync'd commit, index pages written again) over
   more entries: 2,000 entries per commit drained 10-15% faster than 200 in alternated runs
   (figures:
   bench/README.md#benchoutage-serving-through-a-primary-outage-detecting-it-reconciling-afterwards);
   the byte bound keeps a batch of large packages small. The primary failing stops the
   run: the rest waits for the next one. A batch failing for any other reason is applied
   again one entry at a time (`JournaledIntake.settle`): the entry at fault is quarantined
   after its attempts and the rest go on (docs/journal.md).
2. **Re-check every open gap** against the primary, a page at a time: found resolves it
   `found` with the final verification answer (and warms the replica with the invoice);
   not found resolves it `missing` once the grace period has passed since it was first
   seen, else it stays open for a later run. A page is resolved in one transaction.
3. **Deliver the callbacks** of resolved gaps (`fallback.callbacks`: retries with backoff).
4. **Prune** journal entries applied more than `journal_retention` ago.

`status()` is the progress of the current or last run (`GET /api/v1/reconcile/status`; the
CLI draws it as progress bars). Runs do not overlap in a process: asking while one runs
waits for it. Two processes on the same files (the service and `invoice-verify reconcile`)
are safe: journal entries and gaps are settled with conditional updates and applying is
idempotent; a callback may then be sent twice (receivers key on `gap_id`). With the shared
ledger (`INVOICE_ES_URL`: `fallback.shared_gaps`) every process's reconciler works on the
deployment's gaps, its journal staying its own: each gap is resolved by one of them and each
callback is claimed before it is sent, so it is sent once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from fallback.breaker import Clock, utc_now
from fallback.callbacks import CallbackNotifier
from fallback.gaps import Gap, GapOutcome, GapStatus, ReconcileLedger, Resolution
from fallback.journaled_intake import TRANSIENT, UNPROCESSABLE, JournaledIntake
from fallback.replica import Replica, ReplicaUnavailable
from fallback.replica_docs import replica_doc
from fallback.wake import wait_event
from indexer.journal import JournalEntry
from indexer.model import Invoice

log = logging.getLogger("fallback.reconciler")

#: For each gap id of a page, the primary's answer and the invoice it found (None: not
#: found). Wired by the service graph (`verify.services`) with
#: `fallback.lookup.gap_answers`, which gives the answer its lookup's shape.
GapAnswerer = Callable[[Sequence[Gap]], Awaitable[dict[str, tuple[dict[str, Any],
                                                                   Invoice | None]]]]


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass(slots=True)
class ReconcileProgress:
    state: str = "idle"  # idle | running
    phase: str | None = None  # journal | gaps | callbacks | prune
    runs: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None
    journal_total: int = 0
    journal_applied: int = 0
    gaps_total: int = 0
    gaps_checked: int = 0
    gaps_found: int = 0
    gaps_missing: int = 0
    gaps_waiting: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    journal_pruned: int = 0
    journal_quarantined: int = 0  # entries set aside in this run (docs/journal.md)
    stopped_by: str | None = None  # why a run ended early (the primary failing)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = _stamp(self.started_at)
        out["finished_at"] = _stamp(self.finished_at)
        return out


class PrimaryFailed(Exception):
    """The primary failed during a run; the run stops, the next one resumes."""


class Reconciler:
    def __init__(self, intake: JournaledIntake, gaps: ReconcileLedger,
                 answer_gaps: GapAnswerer, replica: Replica, *,
                 notifier: CallbackNotifier | None, grace: timedelta,
                 journal_retention: timedelta = timedelta(days=7), page: int = 500,
                 batch: int = 2000, batch_bytes: int | None = None,
                 on_progress: Callable[[ReconcileProgress], None] | None = None,
                 ready: Callable[[], bool] | None = None,
                 clock: Clock = utc_now) -> None:
        self.intake = intake
        self.journal = intake.journal
        self.gaps = gaps
        self.answer_gaps = answer_gaps
        self.replica = replica
        self.notifier = notifier
        self.grace = grace
        self.journal_retention = journal_retention
        self.page = page
        if batch < 1 or (batch_bytes is not None and batch_bytes < 1):
            raise ValueError("a reconciler batch takes at least one entry and one byte")
        self.batch = batch
        self.batch_bytes = batch_bytes
        self.on_progress = on_progress
        #: Whether the primary may be used now (no maintenance window, breaker closed):
        #: a run asked for while it may not does nothing and says why.
        self.ready = ready
        self._clock = clock
        self._lock = asyncio.Lock()
        self._woken = asyncio.Event()
        self.progress = ReconcileProgress()

    def wake(self) -> None:
        """The primary became usable (its breaker closed, a maintenance window ended):
        `run_forever` runs at once instead of at its next periodic check. Safe to call
        from any callback on the loop, any number of times."""
        self._woken.set()

    def over(self, intake: JournaledIntake) -> Reconciler:
        """The same reconciler (ledger, answers, callbacks, batches, readiness) over another
        journal: one whose slot no live process holds (`invoice-verify reconcile` drains
        every journal file of the data directory, docs/journal.md)."""
        return Reconciler(intake, self.gaps, self.answer_gaps, self.replica,
                          notifier=self.notifier, grace=self.grace,
                          journal_retention=self.journal_retention, page=self.page,
                          batch=self.batch, batch_bytes=self.batch_bytes,
                          on_progress=self.on_progress, ready=self.ready, clock=self._clock)

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def _urgent(self) -> bool:
        """Pending journal entries, gaps this process has just sent to the shared ledger
        (`ReconcileLedger.arrived`: those it recorded during an outage), or callbacks due:
        worth a run at once."""
        if self.journal.pending_count or self.gaps.arrived():
            return True
        if self.notifier is None:
            return False
        return bool(await self.gaps.due_callbacks(
            max_attempts=self.notifier.policy.max_attempts, limit=1))

    async def work_waiting(self) -> bool:
        """Anything for a run to do: pending journal entries, open gaps, due callbacks."""
        return await self._urgent() or bool(await self.gaps.count(GapStatus.OPEN))

    async def run(self) -> ReconcileProgress:
        async with self._lock:
            runs = self.progress.runs + 1
            self.progress = p = ReconcileProgress(state="running", runs=runs,
                                                  started_at=self._clock())
            began = time.perf_counter()
            try:
                if self.ready is not None and not self.ready():
                    raise PrimaryFailed("the primary is unavailable (a maintenance window "
                                        "or an open breaker); nothing was done")
                await self._drain(p)
                await self._recheck_gaps(p)
                await self._callbacks(p)
                await self._prune(p)
            except PrimaryFailed as exc:
                p.stopped_by = str(exc)
                log.warning("reconcile stopped: the primary failed", extra={"error": str(exc)})
            finally:
                p.state, p.phase = "idle", None
                p.finished_at = self._clock()
                p.seconds = round(time.perf_counter() - began, 3)
                self._tell(p)
            log.info("reconcile run finished", extra={"progress": p.as_dict()})
            return p

    def _tell(self, p: ReconcileProgress) -> None:
        if self.on_progress is not None:
            self.on_progress(p)

    async def _drain(self, p: ReconcileProgress) -> None:
        p.phase = "journal"
        await self.journal.refresh()
        p.journal_total = (await self.journal.counts())["pending"]
        self._tell(p)
        after = 0
        while True:
            entries = await self.journal.pending(after=after, limit=self.batch,
                                                 max_bytes=self.batch_bytes)
            if not entries:
                return
            try:
                await self.intake.apply_entries(entries)
            except TRANSIENT as exc:
                await self._primary_failed(entries[0].seq, exc)
            except Exception:
                # Something in the batch is wrong, not the primary: find which, one by one.
                log.exception("a batch of journal entries failed to apply; applying them "
                              "one at a time", extra={"first": entries[0].seq,
                                                      "entries": len(entries)})
                await self._drain_alone(entries, p)
            else:
                p.journal_applied += len(entries)
            after = entries[-1].seq
            self._tell(p)

    async def _drain_alone(self, entries: Sequence[JournalEntry],
                           p: ReconcileProgress) -> None:
        """Each entry of a failed batch alone, in order (`JournaledIntake.settle`): one that
        fails again and again is quarantined, and the others go on behind it."""
        for entry in entries:
            try:
                notice = await self.intake.settle(entry)
            except TRANSIENT as exc:
                await self._primary_failed(entry.seq, exc)
            if notice.get("error", {}).get("code") == UNPROCESSABLE:
                p.journal_quarantined += 1
            else:
                p.journal_applied += 1

    async def _primary_failed(self, seq: int, exc: Exception) -> NoReturn:
        """The primary failed: the entry stays pending (nothing counted), the run stops."""
        await self.journal.note_failure(seq, repr(exc), counts=False)
        raise PrimaryFailed(f"applying journal entries from {seq}: {exc!r}") from exc

    async def _recheck_gaps(self, p: ReconcileProgress) -> None:
        p.phase = "gaps"
        p.gaps_total = await self.gaps.count(GapStatus.OPEN)
        self._tell(p)
        after: str | None = None
        while True:
            page = await self.gaps.list(status=GapStatus.OPEN, after=after, limit=self.page)
            if not page:
                return
            after = page[-1].id
            try:
                answers = await self.answer_gaps(page)
            except TRANSIENT as exc:
                raise PrimaryFailed(f"re-checking gaps: {exc!r}") from exc
            now = self._clock()
            settled: list[Resolution] = []
            found: list[Invoice] = []
            for gap in page:
                answer, invoice = answers[gap.id]
                if invoice is not None:
                    settled.append(Resolution(gap.id, GapOutcome.FOUND, answer,
                                              gap.lookup_key))
                    found.append(invoice)
                elif datetime.fromtimestamp(gap.first_seen, now.tzinfo) + self.grace <= now:
                    settled.append(Resolution(gap.id, GapOutcome.MISSING, answer,
                                              gap.lookup_key))
                else:
                    p.gaps_waiting += 1
            await self.gaps.resolve_many(settled)
            p.gaps_checked += len(page)
            p.gaps_found += len(found)
            p.gaps_missing += len(settled) - len(found)
            await self._warm(found)
            self._tell(p)

    async def _warm(self, invoices: list[Invoice]) -> None:
        if not invoices:
            return
        try:
            await self.replica.put_many(replica_doc(i) for i in invoices)
        except ReplicaUnavailable as exc:
            log.warning("replica unavailable while warming it", extra={"error": str(exc)})

    async def _callbacks(self, p: ReconcileProgress) -> None:
        if self.notifier is None:
            return
        p.phase = "callbacks"
        self._tell(p)
        delivery = await self.notifier.deliver_due()
        p.callbacks_sent, p.callbacks_failed = delivery.sent, delivery.failed

    async def _prune(self, p: ReconcileProgress) -> None:
        p.phase = "prune"
        p.journal_pruned = await self.journal.prune(self._clock() - self.journal_retention)

    async def run_forever(self, *, interval: float,
                          heartbeat: Callable[[], None] | None = None,
                          recheck_every: float = 60.0) -> None:
        """Reconcile automatically: every `interval` seconds, when `ready()` says the primary
        is usable, run if the journal holds pending entries or callbacks are due, right
        after the primary came back (ready turned true, or `wake()` was called: the health
        monitor and the breaker call it the moment the primary is usable again, so a run
        need not wait for the next tick), and otherwise at most every `recheck_every`
        seconds while gaps are open (they wait for their grace period)."""
        ready = self.ready or (lambda: True)
        was_ready = True
        last_run = float("-inf")
        while True:
            try:
                woken = self._woken.is_set()
                self._woken.clear()
                await self.journal.refresh()
                now_ready = ready()
                recovered = now_ready and (woken or not was_ready)
                was_ready = now_ready
                if now_ready and (recovered or await self._urgent()
                                  or (time.monotonic() - last_run >= recheck_every
                                      and await self.work_waiting())):
                    await self.run()
                    last_run = time.monotonic()
                if heartbeat is not None:
                    heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep looping: the next tick retries
                self.progress.errors = [*self.progress.errors[-9:], repr(exc)]
                log.exception("reconcile loop iteration failed")
            await wait_event(self._woken, interval)
