"""The numbering-gap report: per numbering sequence, which numbers are missing.

Built from the store's runs (`InvoiceStore.numbering_runs`), one sequence at a time; nothing
here reads an invoice. What a gap is:

- Vietnam (vn-einvoice §1.3): a series numbers from 1, once per year (the series carries the
  year), uniquely and in increasing order, per (seller, template, series). Missing are the
  numbers between 1 and the last number seen that were not seen. The leading range
  1..first-1 is only reported when the scope covers the series' start (no `from`, or a
  `from` on or before 1 January of the series' year): a scope starting mid-year begins
  wherever numbering stood on that day.
- China, invoices with a code (cn-invoice §1.3): the 8-digit numbers run sequentially
  within a code (printed by batch), and a seller is allocated blocks of them, so missing are
  the numbers between the first and the last number seen for the seller under that code.
- Neither scheme declares the last number issued, so nothing after the last number seen is
  reported (a trailing hole needs the authority's ledger: reconciliation, a later issue).
- Fully digitalised (数电) 20-digit numbers get no report: see docs/reports.md#what-counts-as-a-gap.

A cancelled invoice's number was used: it counts as issued, is never missing, and is listed
separately (count and ranges).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from indexer.store import InvoiceStore
from indexer.store.numbering_reports import NumberingScope, NumberRun, SequenceKey
from indexer.vn import parse_series


@dataclass(frozen=True, slots=True)
class NumberRange:
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def as_list(self) -> list[int]:
        return [self.first, self.last]


@dataclass(slots=True)
class SequenceGaps:
    """The report of one numbering sequence."""

    sequence: SequenceKey
    seller_tax_id: str
    expected_first: int  # where numbering is taken to start in this scope
    first: int  # first number seen
    last: int = 0  # last number seen
    issued: int = 0  # numbers seen, cancelled ones included
    missing: list[NumberRange] = field(default_factory=list)
    cancelled: list[NumberRange] = field(default_factory=list)

    @property
    def missing_count(self) -> int:
        return sum(r.count for r in self.missing)

    @property
    def cancelled_count(self) -> int:
        return sum(r.count for r in self.cancelled)

    def key_fields(self) -> dict[str, str | None]:
        vn = self.sequence.scheme == "vn"
        return {"scheme": self.sequence.scheme, "seller_tax_id": self.seller_tax_id,
                "template": self.sequence.group if vn else None,
                "series": self.sequence.subgroup if vn else None,
                "invoice_code": None if vn else self.sequence.group}

    def as_dict(self) -> dict[str, Any]:
        return {**self.key_fields(), "expected_first": self.expected_first,
                "first": self.first, "last": self.last, "issued": self.issued,
                "missing_count": self.missing_count,
                "missing": [r.as_list() for r in self.missing],
                "cancelled_count": self.cancelled_count,
                "cancelled": [r.as_list() for r in self.cancelled]}


def expected_first(sequence: SequenceKey, first_seen: int, scope: NumberingScope) -> int:
    """1 for a Vietnamese series whose start the scope covers; else the first number seen."""
    if sequence.scheme != "vn":
        return first_seen
    parsed = parse_series(sequence.subgroup)
    if parsed is None:
        return first_seen
    if scope.issued_from is None or scope.issued_from <= date(2000 + parsed.year, 1, 1):
        return 1
    return first_seen


def _start(run: NumberRun, scope: NumberingScope) -> SequenceGaps:
    begin = expected_first(run.sequence, run.first, scope)
    return SequenceGaps(run.sequence, scope.seller_tax_id, begin, run.first, last=begin - 1)


def _add(gaps: SequenceGaps, run: NumberRun) -> None:
    if run.first > gaps.last + 1:
        gaps.missing.append(NumberRange(gaps.last + 1, run.first - 1))
    if run.cancelled:
        gaps.cancelled.append(NumberRange(run.first, run.last))
    gaps.last = run.last
    gaps.issued += run.count


async def numbering_gaps(store: InvoiceStore, scope: NumberingScope, *,
                         page_size: int = 5_000) -> AsyncGenerator[SequenceGaps, None]:
    """One `SequenceGaps` per sequence in scope, in (scheme, sequence) order, each yielded
    as soon as its last run has arrived. Memory: one page of runs plus one sequence's ranges."""
    current: SequenceGaps | None = None
    async with aclosing(store.numbering_runs(scope, page_size=page_size)) as pages:
        async for page in pages:
            for run in page:
                if current is not None and current.sequence != run.sequence:
                    yield current
                    current = None
                if current is None:
                    current = _start(run, scope)
                _add(current, run)
    if current is not None:
        yield current
