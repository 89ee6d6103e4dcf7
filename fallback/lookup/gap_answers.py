"""The answers the reconciler gives gaps (`fallback.reconciler.GapAnswerer`): each gap's
lookup asked again of the primary, answered in the shape every lookup answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fallback.breaker import utc_now
from fallback.gaps import Gap
from fallback.lookup.answer import build_answer
from fallback.lookup.query import LookupQuery, MatchFields
from fallback.reconciler import GapAnswerer
from indexer.model import Invoice
from indexer.store import InvoiceStore


def gap_query(gap: Gap) -> LookupQuery:
    """The lookup a gap stands for (its key; the caller's `issued_on` if it gave one)."""
    query = LookupQuery.of_lookup_key(gap.lookup_key, MatchFields(issued_on=gap.issued_on))
    if query is None:
        raise ValueError(f"gap {gap.id} has an unreadable lookup key {gap.lookup_key!r}")
    return query


def gap_answerer(store: InvoiceStore) -> GapAnswerer:
    """Answers a page of gaps from the primary: one batched read for keyed gaps, one read
    per authority code."""

    async def answer(gaps: Sequence[Gap]) -> dict[str, tuple[dict[str, Any],
                                                              Invoice | None]]:
        queries = {gap.id: gap_query(gap) for gap in gaps}
        by_id = await store.get_invoices(
            {q.key.doc_id for q in queries.values() if q.key is not None})
        now = utc_now()
        out: dict[str, tuple[dict[str, Any], Invoice | None]] = {}
        for gap_id, query in queries.items():
            if query.key is not None:
                invoice = by_id.get(query.key.doc_id)
            else:
                assert query.authority_code is not None
                invoice = await store.find_by_authority_code(query.authority_code)
            out[gap_id] = (build_answer(query, invoice, as_of=now), invoice)
        return out

    return answer
