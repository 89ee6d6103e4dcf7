"""Warming an empty replica from the primary at start (the embedded default's in-memory
replica starts empty with every process; without this, a maintenance window right after a
restart would answer `unconfirmed` even for invoices the primary holds).

Verification demand sits in the weeks after issue, so the most recently issued invoices go
first: the last `recent_days` by issue date, a week at a time, newest week first; then, while
there is room, the older ones in document order, up to `limit` in all. Runs in the
background: lookups are served meanwhile, and a replica miss is still only `unconfirmed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, date, datetime, timedelta

from fallback.replica import Replica
from fallback.replica_docs import replica_doc
from indexer.store import InvoiceStore

log = logging.getLogger("fallback.warmup")

WEEK = timedelta(days=7)


async def _copy(store: InvoiceStore, replica: Replica, start: date, end: date,
                budget: int, page: int) -> int:
    copied = 0
    after: str | None = None
    while copied < budget:
        invoices = await store.scan_invoices(start, end, after=after,
                                             limit=min(page, budget - copied))
        if not invoices:
            break
        await replica.put_many(replica_doc(i) for i in invoices)
        copied += len(invoices)
        await asyncio.sleep(0)  # the memory replica's put never suspends: let requests in
        after = invoices[-1].doc_id
    return copied


async def warm_replica(store: InvoiceStore, replica: Replica, *, limit: int,
                       recent_days: int = 90, today: date | None = None,
                       page: int = 200) -> int:
    """How many invoices were copied. A primary or replica failure ends it quietly (logged):
    warming is an optimisation, never a reason not to serve."""
    began = time.perf_counter()
    end = (today or datetime.now(UTC).date()) + timedelta(days=1)
    oldest_recent = end - timedelta(days=recent_days)
    copied = 0
    try:
        week_end = end
        while week_end > oldest_recent and copied < limit:
            week_start = max(week_end - WEEK, oldest_recent)
            copied += await _copy(store, replica, week_start, week_end, limit - copied, page)
            week_end = week_start
        if copied < limit:
            copied += await _copy(store, replica, date(1900, 1, 1), oldest_recent,
                                  limit - copied, page)
    except Exception as exc:  # any failure ends it: see the docstring
        log.warning("replica warm-up stopped", extra={"copied": copied, "error": repr(exc)})
        return copied
    log.info("replica warmed from the primary", extra={
        "copied": copied, "seconds": round(time.perf_counter() - began, 3)})
    return copied
