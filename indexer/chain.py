"""The invoice chain as one table: what a replacement, an adjustment or a cancellation may do
to the invoice it names, given that invoice's kind and where it stands (vn-einvoice §5.6, §8
step 2.3-2.5).

Intake applies an incoming document through `transition`; the monthly recheck replays each
invoice's recorded history (its `replaced_by` / `adjusted_by` / `cancelled_by` relations, in
the order they were written) through the same table, so whatever intake would refuse today is
found in what the index already holds. docs/rules.md shows the table (`chain_markdown`).

Semantics (Decree 123/2020 Art. 19, Circular 78/2021 as vn-einvoice §5.6 and §6.5 record them):
- an invoice in force (issued) may be replaced, adjusted or cancelled;
- an adjusted invoice may be adjusted again, but not replaced (`chain.original.adjusted`) nor
  cancelled (`chain.cancel.has_adjustment`): the adjustment stands on it, and cancelling the
  original alone would leave an adjustment of nothing answering `valid`;
- a replaced or cancelled invoice is no longer in force: nothing more happens to it;
- an adjustment is neither replaced nor adjusted (`chain.original.is_adjustment`), a
  replacement not adjusted (`chain.original.is_replacement`) but replaced again;
- a correction (replacement or adjustment) is not cancelled (`chain.cancel.is_replacement`,
  `chain.cancel.is_adjustment`): an error in it is corrected by a further replacement, and a
  cancelled replacement would leave its original `replaced` by nothing for good;
- a correction is not dated before its original (`chain.replacement.before_original`,
  `chain.adjustment.before_original`), compared on issue dates in the scheme's zone.

Red-letter invoices (红字发票, cn-invoice §4.4 "红冲 ... 全额 = fully, 部分 = partly"):
- a red-letter invoice reverses part of its blue invoice (`reverse_partly`: the blue one is
  `partially_reversed`, 部分红冲) or, with the ones before it, all of it (`reverse_fully`:
  `reversed`, 已全额红冲, no longer in force); which of the two is decided by the amounts
  (`reversal`), and the red totals never add up to more than the blue total
  (`chain.red_letter.exceeds_blue`);
- a partly reversed invoice is changed by further red-letter invoices only: not voided
  (`chain.cancel.has_red_letter`), replaced nor adjusted (`chain.original.reversed`);
- a red-letter invoice is not voided (`chain.cancel.is_red_letter`), replaced, adjusted nor
  reversed (`chain.original.is_red_letter`); an adjustment is not reversed either, nor an
  adjusted invoice (`chain.original.adjusted`);
- a red-letter invoice is not dated before its blue invoice
  (`chain.red_letter.before_original`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from indexer.model import Invoice, Kind, Lifecycle, RelationKind


class Event(enum.StrEnum):
    """What an incoming document does to the invoice it names."""

    REPLACE = "replace"
    ADJUST = "adjust"
    CANCEL = "cancel"
    REVERSE_PARTLY = "reverse_partly"
    REVERSE_FULLY = "reverse_fully"


#: The events of a red-letter invoice.
REVERSALS = frozenset({Event.REVERSE_PARTLY, Event.REVERSE_FULLY})
#: States in which an invoice is no longer in force: nothing more happens to it.
_ENDED = frozenset({Lifecycle.CANCELLED, Lifecycle.REPLACED, Lifecycle.REVERSED})


@dataclass(frozen=True, slots=True)
class Transition:
    """One cell: the rule that refuses it, or the state the invoice moves to."""

    rule: str | None
    result: Lifecycle | None = None

    @property
    def allowed(self) -> bool:
        return self.rule is None


def _cell(kind: Kind, state: Lifecycle, event: Event) -> Transition:
    """How each cell of `TABLE` is derived; the table is what everything reads."""
    if state in _ENDED:
        return Transition(
            "notice.target.not_in_force" if event is Event.CANCEL else "chain.original.not_in_force"
        )
    if kind is Kind.RED_LETTER:
        if event is Event.CANCEL:
            return Transition("chain.cancel.is_red_letter")
        return Transition("chain.original.is_red_letter")
    if event is Event.CANCEL:
        return _cancel_cell(kind, state)
    if kind is Kind.ADJUSTMENT:
        return Transition("chain.original.is_adjustment")
    if event in REVERSALS:
        if state is Lifecycle.ADJUSTED:
            return Transition("chain.original.adjusted")
        full = event is Event.REVERSE_FULLY
        return Transition(None, Lifecycle.REVERSED if full else Lifecycle.PARTIALLY_REVERSED)
    if state is Lifecycle.PARTIALLY_REVERSED:
        return Transition("chain.original.reversed")
    if event is Event.ADJUST:
        if kind is Kind.REPLACEMENT:
            return Transition("chain.original.is_replacement")
        return Transition(None, Lifecycle.ADJUSTED)
    if state is Lifecycle.ADJUSTED:
        return Transition("chain.original.adjusted")
    return Transition(None, Lifecycle.REPLACED)


def _cancel_cell(kind: Kind, state: Lifecycle) -> Transition:
    if kind is Kind.REPLACEMENT:
        return Transition("chain.cancel.is_replacement")
    if kind is Kind.ADJUSTMENT:
        return Transition("chain.cancel.is_adjustment")
    if state is Lifecycle.ADJUSTED:
        return Transition("chain.cancel.has_adjustment")
    if state is Lifecycle.PARTIALLY_REVERSED:
        return Transition("chain.cancel.has_red_letter")
    return Transition(None, Lifecycle.CANCELLED)


#: (kind of the named invoice, its state, the incoming event) -> the transition.
TABLE: dict[tuple[Kind, Lifecycle, Event], Transition] = {
    (kind, state, event): _cell(kind, state, event)
    for kind in Kind
    for state in Lifecycle
    for event in Event
}

#: The rule refusing a correction dated before its original.
BEFORE_ORIGINAL = {
    Kind.REPLACEMENT: "chain.replacement.before_original",
    Kind.ADJUSTMENT: "chain.adjustment.before_original",
    Kind.RED_LETTER: "chain.red_letter.before_original",
}

#: The event an incoming correction is, by its kind (a red-letter invoice's is decided by the
#: amounts, `reversal`; `reverse_partly` stands for it where they are not known); the
#: relation that records each event.
EVENT_OF_KIND = {
    Kind.REPLACEMENT: Event.REPLACE,
    Kind.ADJUSTMENT: Event.ADJUST,
    Kind.RED_LETTER: Event.REVERSE_PARTLY,
}
EVENT_OF_RELATION = {
    RelationKind.REPLACED_BY: Event.REPLACE,
    RelationKind.ADJUSTED_BY: Event.ADJUST,
    RelationKind.CANCELLED_BY: Event.CANCEL,
}


def transition(target: Invoice, event: Event) -> Transition:
    return TABLE[(target.kind, target.lifecycle, event)]


def reversed_amount(blue: Invoice) -> Decimal:
    """What the blue invoice's red-letter invoices have reversed so far (positive)."""
    return sum(
        (r.amount for r in blue.relations if r.kind is RelationKind.REVERSED_BY and r.amount),
        Decimal(0),
    )


def reversal(blue: Invoice, red_total: Decimal) -> tuple[Event, bool]:
    """The event a red-letter invoice of `red_total` (either sign) is to `blue`, and whether
    it reverses more than is left of it (`chain.red_letter.exceeds_blue`)."""
    after = reversed_amount(blue) + abs(red_total)
    whole = abs(blue.amounts.total)
    return (Event.REVERSE_FULLY if after >= whole else Event.REVERSE_PARTLY), after > whole


def before_original(correction: Invoice, original: Invoice) -> str | None:
    """The rule a correction dated before its original breaks, if it does."""
    if correction.issued_on < original.issued_on:
        return BEFORE_ORIGINAL.get(correction.kind)
    return None


def replay(invoice: Invoice) -> Iterator[tuple[str, str]]:
    """(rule, detail) for each recorded event the table refuses, replaying the invoice's
    history from `issued`, then `chain.state.inconsistent` when the stored state is not the
    state its history leads to."""
    state = Lifecycle.ISSUED
    reversed_by = Decimal(0)
    whole = abs(invoice.amounts.total)
    for relation in invoice.relations:
        event = EVENT_OF_RELATION.get(relation.kind)
        if relation.kind is RelationKind.REVERSED_BY:
            reversed_by += relation.amount or 0
            event = Event.REVERSE_FULLY if reversed_by >= whole else Event.REVERSE_PARTLY
            if reversed_by > whole:
                named = relation.key.doc_id if relation.key else relation.notice_id
                detail = f"{relation.kind.value} {named}: {reversed_by} of {whole}"
                yield "chain.red_letter.exceeds_blue", detail
        if event is None:
            continue
        step = TABLE[(invoice.kind, state, event)]
        if not step.allowed:
            assert step.rule is not None
            named = relation.key.doc_id if relation.key else relation.notice_id
            yield step.rule, f"{relation.kind.value} {named}"
            continue
        assert step.result is not None
        state = step.result
    if state is not invoice.lifecycle:
        yield "chain.state.inconsistent", f"{invoice.lifecycle.value}, history says {state.value}"


def chain_markdown() -> str:
    """The transition table as docs/rules.md shows it."""
    events = list(Event)
    lines = [
        "## Chain transitions",
        "",
        "Generated from `indexer/chain.py`: what a replacement, an adjustment or a cancel "
        "notice does to the invoice it names, by that invoice's kind and state. A cell is the "
        "state the invoice moves to, or the rule that refuses the document. Intake applies it; "
        "`invoice-verify recheck` replays every invoice's history through it. A replacement or "
        "adjustment dated before its original is refused as well "
        "(`chain.replacement.before_original`, `chain.adjustment.before_original`). A "
        "red-letter invoice (红字, Chinese) is `reverse_partly` while the red totals stay "
        "below the blue total and `reverse_fully` when they reach it; more is refused "
        "(`chain.red_letter.exceeds_blue`), and so is one dated before its blue invoice "
        "(`chain.red_letter.before_original`).",
        "",
        "| kind | state | " + " | ".join(e.value for e in events) + " |",
        "| --- | --- | " + " | ".join("---" for _ in events) + " |",
    ]
    for kind in Kind:
        for state in Lifecycle:
            cells = []
            for event in events:
                step = TABLE[(kind, state, event)]
                cells.append(f"-> {step.result.value}" if step.result else f"`{step.rule}`")
            lines.append(f"| {kind.value} | {state.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
