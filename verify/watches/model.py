"""What a watch is, what an event says, and what counts as a change (docs/watches.md).

A watch is one key (API key id) watching one lookup key until it expires: an invoice id
(`vn:0100109106:1:C22TAA:123`, `cn:...`) or `authority_code:<code>`, the names the gap
ledger and the audit trail use (`fallback.lookup.query.LookupQuery.lookup_key`).

A change is what the intake's chain rules do to an invoice already indexed: it is cancelled
(a notice), replaced or adjusted (a later invoice; a Chinese red-letter invoice, 红字, says
`red_letter`), whatever status `indexer.model.Lifecycle` gives it then. Each change adds one
incoming relation (`..._by`), which names it: the notice id, or the id of the invoice that
made it. An event is identified by (watch, invoice, new status, that name), so the same
change committed twice (a replay, a retry, a journal entry applied by two reconcilers) is
one event. A gap resolved is an event too, named by the gap's id.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from indexer.model import Invoice, Lifecycle, Relation, RelationKind

#: The events' kinds.
CHANGED = "invoice.changed"
GAP_RESOLVED = "gap.resolved"
AUTHORITY_CODE_PREFIX = "authority_code:"


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class Watch:
    id: str
    key_id: str
    key: str
    created_at: float
    expires_at: float
    callback_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "created_at": stamp(self.created_at),
                "expires_at": stamp(self.expires_at), "callback_url": self.callback_url}


@dataclass(frozen=True, slots=True)
class Change:
    """One state an invoice reached, as the intake committed it (or a gap resolved)."""

    kind: str
    keys: tuple[str, ...]  # the lookup keys that name it (invoice id, authority code)
    invoice_id: str | None
    status: str
    by: str  # what made it: notice id, invoice id, or gap id
    details: dict[str, Any]
    #: When the change was made (its relation's `at`), for a change found by the sweep
    #: (`verify.watches.events.WatchHook.sweep`): only watches made by then get its event.
    #: None at the commit itself: every watch in force does.
    at: float | None = None


def watch_keys(invoice: Invoice) -> tuple[str, ...]:
    """Every lookup key a watch of this invoice may hold."""
    if invoice.authority_code:
        return invoice.doc_id, AUTHORITY_CODE_PREFIX + invoice.authority_code
    return (invoice.doc_id,)


def _made_by(invoice: Invoice) -> Relation | None:
    """The latest change made to the invoice: its last incoming relation (`cancelled_by`,
    `replaced_by`, `adjusted_by`, and any later `..._by` the chain rules add)."""
    return next((r for r in reversed(invoice.relations) if r.kind.value.endswith("_by")),
                None)


def _red_letter(relation: Relation, batch: dict[str, Invoice]) -> bool:
    """Made by a Chinese red-letter invoice (committed with it): one of that kind, or an
    adjustment with a negative total."""
    if relation.key is None or relation.key.scheme != "cn":
        return False
    adjusting = batch.get(relation.key.doc_id)
    return adjusting is not None and (adjusting.kind.value == "red_letter"
                                      or adjusting.amounts.total < 0)


def changes(invoices: Sequence[Invoice], *, dated: bool = False,
            others: Sequence[Invoice] = ()) -> list[Change]:
    """The state changes among the invoices a commit created or changed: every invoice no
    longer in force. New invoices in force are not changes (nobody watched them changing).
    `dated`: each change says when it was made (the sweep's); `others`: the invoices that
    made them, when not among `invoices` (the sweep reads them to tell a red letter)."""
    batch = {i.doc_id: i for i in (*others, *invoices)}
    found: list[Change] = []
    for invoice in invoices:
        if invoice.lifecycle is Lifecycle.ISSUED:
            continue
        relation = _made_by(invoice)
        if relation is None:
            continue
        details: dict[str, Any] = {}
        if relation.key is not None:
            by = relation.key.doc_id
            details["by"] = {"invoice_id": by}
        else:
            by = relation.notice_id or ""
            details["by"] = {"notice_id": relation.notice_id, "reason": relation.reason}
        if relation.kind is not RelationKind.REPLACED_BY and relation.key is not None:
            details["red_letter"] = _red_letter(relation, batch)
        at = relation.at.timestamp() if dated and relation.at is not None else None
        found.append(Change(CHANGED, watch_keys(invoice), invoice.doc_id,
                            invoice.lifecycle.value, by, details, at))
    return found


def changed_by(invoices: Sequence[Invoice]) -> set[str]:
    """The ids of the Chinese invoices that made the invoices' latest changes (to tell a
    red-letter one: `changes(others=...)`)."""
    made = (_made_by(invoice) for invoice in invoices)
    return {r.key.doc_id for r in made
            if r is not None and r.key is not None and r.key.scheme == "cn"}


def gap_change(gap_id: str, lookup_key: str, outcome: str,
               answer: dict[str, Any]) -> Change:
    """A resolved gap: `found` (with the final answer's status and invoice) or `missing`."""
    invoice = answer.get("invoice") or {}
    invoice_id = invoice.get("id") if isinstance(invoice, dict) else None
    keys = (lookup_key,) if not invoice_id or invoice_id == lookup_key \
        else (lookup_key, str(invoice_id))
    return Change(GAP_RESOLVED, keys, invoice_id if isinstance(invoice_id, str) else None,
                  str(answer.get("status") or outcome), gap_id,
                  {"gap_id": gap_id, "resolution": outcome})


@dataclass(frozen=True, slots=True)
class WatchEvent:
    seq: int
    id: str
    watch_id: str
    key: str
    kind: str
    invoice_id: str | None
    status: str
    at: float
    details: dict[str, Any]
    #: In the feed, for a watch with a callback: (attempts, sent at, last error).
    delivery: tuple[int, float | None, str | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The event as the feed shows it and the callback sends it: no party of the invoice,
        only its id and new status (the watcher looks it up for the rest, under its own
        key's tenancy and limits)."""
        return {"event": self.kind, "id": self.id, "cursor": str(self.seq),
                "watch_id": self.watch_id, "key": self.key, "invoice_id": self.invoice_id,
                "status": self.status, "at": stamp(self.at), **self.details}
