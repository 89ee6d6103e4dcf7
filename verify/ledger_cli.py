"""`invoice-verify report ledger`: the ledger reconciliation of `POST /api/v1/reports/ledger`
run from the command line, on the data directory's backends (`verify.services`, as the
service opens them).

It checks lines exactly as the service does (`verify.reports.ledger_check`): the primary and the
replica as configured, and the data directory's outage log, gap ledger and intake journal,
so what a miss means follows the same windows and an unconfirmed line records its gap where
the service's reconciler resolves it (requester `cli`). No key, no redaction: whoever can
read the data directory sees everything in it anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, BinaryIO

from fallback.lookup.query import LookupQuery
from fallback.lookup.resilience import Resilience
from indexer.ledger_file import LedgerTable
from verify.lookup.batch import Verifier
from verify.reports.ledger import LedgerRequest, render
from verify.reports.ledger_check import LedgerTotals, LineChecker
from verify.reports.ledger_lines import LedgerLine, LineError
from verify.services import open_services
from verify.settings import Settings

REQUESTER = "cli"


def cli_verifier(resilience: Resilience) -> Verifier:
    """A lookup answered as the service answers it (`Resilience.answer`), unredacted, any
    gap recorded for requester `cli` (`invoice-verify verify --batch`)."""

    async def verify(query: LookupQuery) -> dict[str, Any]:
        answer, _invoice = await resilience.answer(query, REQUESTER)
        return answer

    return verify


async def write_ledger_report(settings: Settings, request: LedgerRequest, table: LedgerTable,
                              lines: list[LedgerLine | LineError], sink: BinaryIO,
                              progress: Callable[[int], None]) -> LedgerTotals:
    """The report written to `sink`; `progress(lines checked)` after every chunk."""
    totals = LedgerTotals()
    async with open_services(settings) as services:
        checker = LineChecker(services.resilience, REQUESTER)
        async with contextlib.aclosing(render(request, table, lines, checker,
                                              totals)) as chunks:
            async for chunk in chunks:
                sink.write(chunk)
                progress(totals.lines)
    return totals
