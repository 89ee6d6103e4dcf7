"""Ledger reconciliation: each line of a buyer's purchase ledger checked against the index,
and the invoices the index holds for that buyer in the period that the ledger lacks.

Lines are checked a chunk at a time, with one batched `get_invoices` on the primary for the
chunk's keys. A line that read found is answered from it as a lookup would be
(`fallback.lookup.answer.build_answer`, source primary). Every other line, and every line while the
primary cannot be read (a declared maintenance window, its breaker open, the read failing or
timing out), is asked through `Resilience.answer`: the lookup path itself, where the intake
journal, the replica and what a miss means (`not_found`, or `unconfirmed` with its reason,
its outage window and a gap in the ledger) are decided, once for every caller. So is a line
whose invoice the intake journal holds a newer state of (queued during an outage). A ledger
is mostly found lines: while the primary answers, only the few others cost a read each.

The not-in-ledger section scans the buyer's invoices of the period
(`InvoiceStore.scan_buyer_invoices`, a page at a time) and lists those the ledger does not
name, whatever their state. It needs the primary; when it cannot be read, the section says
so (`checked: false`) instead of listing nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

from fallback.lookup.answer import Summaries, build_answer, invoice_summary
from fallback.lookup.resilience import Resilience
from indexer.model import Invoice
from indexer.store.protocol import IssuedPosition
from verify.lookup.facts import AnswerFacts
from verify.reports.ledger_lines import LedgerLine, LineError, ledger_mismatches

#: Lines per batched read.
CHUNK = 500
#: Invoices per page of the not-in-ledger scan.
PAGE = 1000
LINE_STATUSES = ("valid", "mismatch", "cancelled", "replaced", "adjusted", "not_found",
                 "outside_window", "unconfirmed", "error")
#: What a lookup answer may add to its verdict (`verify.lookup.facts`), carried by a line
#: when its answer has it: the window of an `outside_window` miss, what the second factor
#: withheld, the seller's warnings, a state still in the intake journal.
_ANSWER_EXTRAS = ("window_years", "window_start", "withheld", "missing_factor", "mismatched_factor",
                  "required_factors", "warnings", "pending_intake")

log = logging.getLogger("verify.ledger")
Redact = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LedgerScope:
    buyer_tax_id: str
    issued_from: date
    issued_until: date  # exclusive


@dataclass(slots=True)
class LedgerTotals:
    statuses: Counter[str] = field(default_factory=Counter)
    not_in_ledger: int = 0
    not_in_ledger_checked: bool = True

    @property
    def lines(self) -> int:
        return sum(self.statuses.values())

    def as_dict(self) -> dict[str, int]:
        return {"lines": self.lines, **{s: self.statuses[s] for s in LINE_STATUSES},
                "not_in_ledger": self.not_in_ledger}

    def summary(self) -> str:
        counts = ", ".join(f"{self.statuses[s]} {s}" for s in LINE_STATUSES if self.statuses[s])
        unlisted = (f"{self.not_in_ledger} not in the ledger" if self.not_in_ledger_checked
                    else "not-in-ledger not checked (primary unavailable)")
        return f"{self.lines} lines: {counts or 'none'}; {unlisted}"


class LineChecker:
    """The primary, read in batches under the same guard as lookups
    (`Resilience.primary_read`), and `Resilience.answer` for whatever a batch does not
    settle. `requester` is recorded with any gap. `facts`: what a lookup adds to the bare
    answer (window, second factor, seller status: `verify.lookup.facts`), for a caller who
    is a party to the invoices `party` says (by default every one: the command line)."""

    def __init__(self, resilience: Resilience, requester: str,
                 redact: Redact | None = None, *, facts: AnswerFacts | None = None,
                 party: Callable[[Invoice], bool] | None = None) -> None:
        self.resilience = resilience
        self.requester = requester
        self.redact = redact or (lambda answer: answer)
        self.facts = facts
        self.party = party or (lambda invoice: True)

    async def check(self, lines: Sequence[LedgerLine]) -> list[dict[str, Any]]:
        return [result for result, _ in await self.check_records(lines)]

    async def check_records(self, lines: Sequence[LedgerLine]
                            ) -> list[tuple[dict[str, Any], Invoice | None]]:
        """Each line's entry, with the invoice record it was read from (None: none). A line
        that fails in any way is answered with its own error (`line_failed`, logged) and
        the others are still checked; so is a batched read that fails for a reason other
        than the primary being unavailable (each line is then asked on its own)."""
        store = self.resilience.store
        try:
            found = await self.resilience.primary_read(
                lambda: store.get_invoices({ln.doc_id for ln in lines}))
        except Exception:
            log.exception("a batched ledger read failed; its lines are asked one by one")
            found = None
        answered: list[tuple[dict[str, Any], Invoice | None] | None] = []
        for line in lines:
            try:
                answered.append(await self._answer(line, found))
            except Exception:
                log.exception("a ledger line could not be checked", extra={"row": line.row})
                answered.append(None)
        sellers = (await self.facts.sellers(a[1] for a in answered if a is not None)
                   if self.facts is not None else None)
        results: list[tuple[dict[str, Any], Invoice | None]] = []
        for line, done in zip(lines, answered, strict=True):
            if done is None:
                results.append((_failed(line), None))
                continue
            answer, invoice = done
            try:
                if self.facts is not None:
                    party = invoice is None or self.party(invoice)
                    answer = self.facts.apply(answer, line.query, invoice, sellers, party=party)
                results.append((line_result(line, self.redact(answer), invoice), invoice))
            except Exception:
                log.exception("a ledger line could not be checked", extra={"row": line.row})
                results.append((_failed(line), None))
        return results

    async def _answer(self, line: LedgerLine, found: dict[str, Invoice] | None
                      ) -> tuple[dict[str, Any], Invoice | None]:
        invoice = found.get(line.doc_id) if found is not None else None
        if invoice is not None and not self.resilience.is_pending(line.doc_id):
            return build_answer(line.query, invoice, summaries=self.resilience.summaries), invoice
        return await self.resilience.answer(line.query, self.requester)


def _failed(line: LedgerLine) -> dict[str, Any]:
    return LineError(line.row, "line_failed", "this line could not be checked; the failure "
                     "was logged", {}).as_dict()


def line_result(line: LedgerLine, answer: dict[str, Any],
                invoice: Invoice | None) -> dict[str, Any]:
    """The report's entry for a checked line: the lookup answer's verdict, with what only a
    ledger compares (tax amount, a Chinese invoice's seller) added to its mismatches."""
    extra = ledger_mismatches(line, invoice) if invoice is not None else []
    status = "mismatch" if answer["status"] == "valid" and extra else answer["status"]
    assert line.query.key is not None
    return {"row": line.row, "status": status, "reason": answer.get("reason"),
            "id": line.doc_id, "scheme": line.query.scheme, "key": line.query.key.as_dict(),
            "given": line.given, "invoice": answer["invoice"],
            "mismatches": [*answer["mismatches"], *extra], "related": answer["related"],
            "source": answer["source"], "degraded": answer["degraded"],
            "as_of": answer["as_of"], "gap_id": answer["gap_id"],
            **{name: answer[name] for name in _ANSWER_EXTRAS if name in answer}}


async def check_lines(lines: Sequence[LedgerLine | LineError], checker: LineChecker,
                      totals: LedgerTotals) -> AsyncIterator[list[dict[str, Any]]]:
    """Every line's entry, in ledger order, a chunk at a time."""
    for start in range(0, len(lines), CHUNK):
        chunk = lines[start:start + CHUNK]
        checked = iter(await checker.check([ln for ln in chunk if isinstance(ln, LedgerLine)]))
        results = [ln.as_dict() if isinstance(ln, LineError) else next(checked) for ln in chunk]
        totals.statuses.update(r["status"] for r in results)
        yield results


def unlisted_entry(invoice: Invoice, memo: Summaries | None = None) -> dict[str, Any]:
    return {"key": invoice.key.as_dict(), "scheme": invoice.scheme,
            **invoice_summary(invoice, memo)}


async def not_in_ledger(scope: LedgerScope, listed: set[str], checker: LineChecker,
                        totals: LedgerTotals) -> AsyncIterator[list[dict[str, Any]]]:
    """The buyer's invoices of the period that no ledger line names, in (issue date, id)
    order, a page at a time; `totals.not_in_ledger_checked` turns False if the primary could
    not be read to the end."""
    scan = checker.resilience.store.scan_buyer_invoices
    after: IssuedPosition | None = None
    while True:
        page = await checker.resilience.primary_read(partial(
            scan, scope.buyer_tax_id, scope.issued_from, scope.issued_until, after=after,
            limit=PAGE))
        if page is None:
            totals.not_in_ledger_checked = False
            return
        memo = checker.resilience.summaries
        entries = [unlisted_entry(inv, memo) for inv in page if inv.doc_id not in listed]
        totals.not_in_ledger += len(entries)
        if entries:
            yield entries
        if len(page) < PAGE:
            return
        after = IssuedPosition.of(page[-1])


def listed_ids(lines: Sequence[LedgerLine | LineError]) -> set[str]:
    return {ln.doc_id for ln in lines if isinstance(ln, LedgerLine)}
