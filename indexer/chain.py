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
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from indexer.model import Invoice, Kind, Lifecycle, RelationKind


class Event(enum.StrEnum):
    """What an incoming document does to the invoice it names."""

    REPLACE = "replace"
    ADJUST = "adjust"
    CANCEL = "cancel"


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
    if state in (Lifecycle.CANCELLED, Lifecycle.REPLACED):
        return Transition(
            "notice.target.not_in_force" if event is Event.CANCEL else "chain.original.not_in_force"
        )
    if event is Event.CANCEL:
        if kind is Kind.REPLACEMENT:
            return Transition("chain.cancel.is_replacement")
        if kind is Kind.ADJUSTMENT:
            return Transition("chain.cancel.is_adjustment")
        if state is Lifecycle.ADJUSTED:
            return Transition("chain.cancel.has_adjustment")
        return Transition(None, Lifecycle.CANCELLED)
    if kind is Kind.ADJUSTMENT:
        return Transition("chain.original.is_adjustment")
    if event is Event.ADJUST:
        if kind is Kind.REPLACEMENT:
            return Transition("chain.original.is_replacement")
        return Transition(None, Lifecycle.ADJUSTED)
    if state is Lifecycle.ADJUSTED:
        return Transition("chain.original.adjusted")
    return Transition(None, Lifecycle.REPLACED)


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
}

#: The event an incoming correction is, by its kind; the relation that records each event.
EVENT_OF_KIND = {Kind.REPLACEMENT: Event.REPLACE, Kind.ADJUSTMENT: Event.ADJUST}
EVENT_OF_RELATION = {
    RelationKind.REPLACED_BY: Event.REPLACE,
    RelationKind.ADJUSTED_BY: Event.ADJUST,
    RelationKind.CANCELLED_BY: Event.CANCEL,
}


def transition(target: Invoice, event: Event) -> Transition:
    return TABLE[(target.kind, target.lifecycle, event)]


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
    for relation in invoice.relations:
        event = EVENT_OF_RELATION.get(relation.kind)
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
        "(`chain.replacement.before_original`, `chain.adjustment.before_original`).",
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
