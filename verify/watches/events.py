"""The fan-out: every change the intake commits (directly, or from the journal when the
reconciler drains it after a maintenance window) and every gap the reconciler resolves is
matched with the watches of its keys and recorded as their events (`SqliteWatchStore.record`,
one statement; `EsWatchStore.record`, a search and a bulk), then the delivery is woken for
the callbacks.

Off the commit's path in the service: the intake's after-commit hook
(`verify.services.WatchedIntakeHook`, after the replica's write-through) only hands the
commit's changes to a bounded queue, and one background task per process (`fan_out`,
started by `verify.watches.setup.delivery_ctx`) takes them in batches and records them: a
change watched by 100,000 keys costs the commit nothing more than one nobody watches. The
commit waits only when `QUEUE_BATCHES` commits are already waiting (backpressure, not loss).
Without the task (the command line: `invoice-verify ingest`, `reconcile`) the hook records
inline, before the command exits. At the service's stop the task records what is queued.

A failure to record is logged and counted, never an intake failure. A process killed
between the commit and the record (or a record that failed) loses no event: the sweep
(`sweep`, at every start of the service and every hour after) reads the invoice of every
watch in force from the primary and records its latest change, for the watches made by the
time it was made. An event's identity (the unique index; the document id on Elasticsearch)
makes that idempotent: a change the fan-out recorded already, or another process's sweep,
is one event (docs/watches.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import replace

from indexer.model import Invoice
from indexer.store import InvoiceStore
from verify.watches.es_store import EsWatchStore
from verify.watches.model import AUTHORITY_CODE_PREFIX, Change, changed_by, changes
from verify.watches.store import SqliteWatchStore

#: The file of the data directory, or the deployment's (`INVOICE_ES_URL`).
WatchStore = SqliteWatchStore | EsWatchStore

log = logging.getLogger("verify.watches")
#: Invoices a read of the sweep asks for.
SWEEP_BATCH = 1000
#: Commits' changes waiting for the background fan-out before a commit waits for room.
QUEUE_BATCHES = 1000
#: Changes the background fan-out records in one `store.record` (a batch of commits).
RECORD_BATCH = 10_000
#: Seconds the service's stop waits for the fan-out to record what is queued (the sweep at
#: the next start finds the rest).
STOP_GRACE_S = 30.0


class WatchHook:
    def __init__(self, store: WatchStore, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        #: Set whenever events were recorded: the delivery waits on it.
        self.recorded_any = asyncio.Event()
        self.recorded = 0
        self.failures = 0
        #: The background fan-out's queue while it runs (`fan_out`); None: record inline.
        self._queue: asyncio.Queue[list[Change]] | None = None

    async def __call__(self, invoices: Sequence[Invoice]) -> None:
        """The intake's after-commit hook: the invoices the commit created or changed,
        handed to the background fan-out (recorded inline when none runs)."""
        found = changes(invoices)
        if not found:
            return
        if self._queue is None:
            await self.record(found)
        else:  # dated now: a watch made after the commit, before the record, is not told
            now = self.clock()
            await self._queue.put([replace(c, at=now) for c in found])

    async def drained(self) -> None:
        """Returns once every change handed to the background fan-out so far is recorded
        (or its record failed, logged); at once without one."""
        if self._queue is not None:
            await self._queue.join()

    @contextlib.asynccontextmanager
    async def fan_out(self) -> AsyncIterator[None]:
        """The background fan-out, for the service's lifetime: the hook queues, one task
        records. On exit, the queue is recorded first (`STOP_GRACE_S` at most), and commits
        made after record inline."""
        queue: asyncio.Queue[list[Change]] = asyncio.Queue(QUEUE_BATCHES)
        task = asyncio.create_task(self._drain(queue), name="watch-fan-out")
        self._queue = queue
        try:
            yield
        finally:
            self._queue = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await queue.join()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _drain(self, queue: asyncio.Queue[list[Change]]) -> None:
        while True:
            batch = [await queue.get()]
            size = len(batch[0])
            while not queue.empty() and size < RECORD_BATCH:
                batch.append(queue.get_nowait())
                size += len(batch[-1])
            try:
                await self.record([c for found in batch for c in found])
            finally:
                for _ in batch:
                    queue.task_done()

    async def record(self, found: Collection[Change]) -> int:
        """The events of `found`; how many were new. Never raises (logged and counted)."""
        try:
            new = await self.store.record(found, now=self.clock())
        except Exception:
            self.failures += 1
            log.exception("watch events could not be recorded", extra={"changes": len(found)})
            return 0
        if new:
            self.recorded += new
            self.recorded_any.set()
        return new

    async def sweep(self, store: InvoiceStore) -> int:
        """The latest change of every watched invoice, as the primary holds it now, recorded
        for the watches made by the time it was made; how many events were new (those a
        crash or a failed record lost). Raises when the primary cannot be read."""
        keys = await self.store.watched_keys(now=self.clock())
        ids = [k for k in keys if not k.startswith(AUTHORITY_CODE_PREFIX)]
        found: dict[str, Invoice] = {}
        for start in range(0, len(ids), SWEEP_BATCH):
            found.update(await store.get_invoices(ids[start:start + SWEEP_BATCH]))
        for key in keys:
            if key.startswith(AUTHORITY_CODE_PREFIX):
                invoice = await store.find_by_authority_code(
                    key.removeprefix(AUTHORITY_CODE_PREFIX))
                if invoice is not None:
                    found[invoice.doc_id] = invoice
        invoices = list(found.values())
        makers = changed_by(invoices) - found.keys()
        others = list((await store.get_invoices(makers)).values()) if makers else []
        made = changes(invoices, dated=True, others=others)
        new = await self.store.record(made, now=self.clock()) if made else 0
        if new:
            self.recorded += new
            self.recorded_any.set()
            log.warning("watch events recorded by the sweep (a commit's record was lost)",
                        extra={"events": new})
        return new
