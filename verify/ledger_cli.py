"""`invoice-verify report ledger`: the ledger reconciliation of `POST /api/v1/reports/ledger`
run from the command line, on the data directory's backends.

It checks lines exactly as the service does (`verify.ledger_check`): the primary and the
replica as configured, and the data directory's outage log, gap ledger and intake journal,
so what a miss means follows the same windows and an unconfirmed line records its gap where
the service's reconciler resolves it (requester `cli`). No key, no redaction: whoever can
read the data directory sees everything in it anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import BinaryIO

from fallback.breaker import BreakerConfig, CircuitBreaker
from fallback.gaps import open_gap_ledger
from fallback.health import DependencyGuard
from fallback.outages import System, open_outage_log
from indexer.journal import open_intake_journal
from indexer.ledger_file import LedgerTable
from indexer.store import InvoiceStore
from verify.backends import open_invoice_store, open_replica
from verify.degraded import Resilience
from verify.ledger_check import LedgerTotals, LineChecker
from verify.ledger_lines import LedgerLine, LineError
from verify.ledger_reports import LedgerRequest, render
from verify.settings import Settings

REQUESTER = "cli"


@contextlib.asynccontextmanager
async def local_resilience(settings: Settings,
                           store: InvoiceStore) -> AsyncIterator[Resilience]:
    """The service's lookup path over this process's view of the data directory."""
    fb = settings.fallback
    lag = timedelta(hours=fb.intake_lag_hours)
    config = BreakerConfig(fb.breaker_failures, float(fb.breaker_open_seconds))
    async with open_replica(settings) as replica, \
            open_outage_log(settings.outages_path, horizon=lag + timedelta(days=1)) \
            as outages, open_gap_ledger(settings.gaps_path) as gaps, \
            open_intake_journal(settings.journal_path) as journal:
        yield Resilience(
            store, replica,
            DependencyGuard(System.PRIMARY, CircuitBreaker("primary", config), outages),
            DependencyGuard(System.REPLICA, CircuitBreaker("replica", config), outages),
            outages, gaps, primary_timeout=fb.primary_timeout_ms / 1000, intake_lag=lag,
            journal=journal)


async def write_ledger_report(settings: Settings, request: LedgerRequest, table: LedgerTable,
                              lines: list[LedgerLine | LineError], sink: BinaryIO,
                              progress: Callable[[int], None]) -> LedgerTotals:
    """The report written to `sink`; `progress(lines checked)` after every chunk."""
    totals = LedgerTotals()
    async with open_invoice_store(settings) as store, \
            local_resilience(settings, store) as resilience:
        checker = LineChecker(resilience, REQUESTER)
        async with contextlib.aclosing(render(request, table, lines, checker,
                                              totals)) as chunks:
            async for chunk in chunks:
                sink.write(chunk)
                progress(totals.lines)
    return totals
