"""The fan-out: every change the intake commits (directly, or from the journal when the
reconciler drains it after a maintenance window) and every gap the reconciler resolves is
matched with the watches of its keys and recorded as their events (`SqliteWatchStore.record`,
one statement), then the delivery is woken for the callbacks.

Called after the commit, like the replica's write-through (`verify.services.WatchedIntakeHook`
chains the two): a failure here is logged and counted, never an intake failure. A process
killed between the commit and the record (or a record that failed) loses no event: the
sweep (`sweep`, at every start of the service and every hour after) reads the invoice of
every watch in force from the primary and records its latest change, for the watches made
by the time it was made. The events' unique index makes that idempotent: a change the commit
recorded already, or another process's sweep, is one event (docs/watches.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence

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


class WatchHook:
    def __init__(self, store: WatchStore, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        #: Set whenever events were recorded: the delivery waits on it.
        self.recorded_any = asyncio.Event()
        self.recorded = 0
        self.failures = 0

    async def __call__(self, invoices: Sequence[Invoice]) -> None:
        """The intake's after-commit hook: the invoices the commit created or changed."""
        found = changes(invoices)
        if found:
            await self.record(found)

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
