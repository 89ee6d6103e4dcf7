"""A lookup query as a read of the invoice store: `fetch_invoice`, with the authority-code
hints of the caller's lookup path (`CodeOwners`)."""

from __future__ import annotations

from fallback.lookup.query import LookupQuery
from indexer.model import Invoice
from indexer.store import InvoiceStore


class CodeOwners:
    """Which document each authority code belongs to, learned from earlier lookups.

    A code is given to one invoice, once, and never moves (a unique index in SQLite, an index
    keyed by the code in Elasticsearch). Knowing its document, a lookup by code reads the
    invoice by id, the store's cheapest read (SQLite serves repeats from its cache instead of
    a query, about 40 us here; Elasticsearch needs one GET instead of two), and trusts the
    hint only when the record read back carries that very code: otherwise it asks the store
    by code as before. Bounded; what it forgets only costs the slower read again."""

    def __init__(self, max_codes: int = 50_000) -> None:
        self._owners: dict[str, str] = {}
        self._max = max_codes

    async def fetch(self, store: InvoiceStore, code: str) -> Invoice | None:
        doc_id = self._owners.get(code)
        if doc_id is not None:
            invoice = await store.get_invoice(doc_id)
            if invoice is not None and invoice.authority_code == code:
                return invoice
        invoice = await store.find_by_authority_code(code)
        if invoice is not None:
            if len(self._owners) >= self._max:
                self._owners.clear()
            self._owners[code] = invoice.doc_id
        return invoice


async def fetch_invoice(store: InvoiceStore, query: LookupQuery,
                        owners: CodeOwners | None = None) -> Invoice | None:
    """The one place a lookup query becomes a store read. `owners`: the code hints of the
    caller's lookup path (one per app, `fallback.lookup.resilience.Resilience`); without,
    a lookup by code asks the store by code."""
    if query.key is not None:
        return await store.get_invoice(query.key.doc_id)
    assert query.authority_code is not None
    if owners is None:
        return await store.find_by_authority_code(query.authority_code)
    return await owners.fetch(store, query.authority_code)
