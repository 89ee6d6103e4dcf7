"""The fan-out: every change the intake commits (directly, or from the journal when the
reconciler drains it after a maintenance window) and every gap the reconciler resolves is
matched with the watches of its keys and recorded as their events (`SqliteWatchStore.record`,
one statement), then the delivery is woken for the callbacks.

Called after the commit, like the replica's write-through (`verify.services.WatchedIntakeHook`
chains the two): a failure here is logged and counted, never an intake failure. What a crash
between the commit and the record loses is the events of that one commit (docs/watches.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence

from indexer.model import Invoice
from verify.watches.model import Change, changes
from verify.watches.store import SqliteWatchStore

log = logging.getLogger("verify.watches")


class WatchHook:
    def __init__(self, store: SqliteWatchStore, *,
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
