"""What a lookup answer adds to the bare answer of the store, for the exits that answer many
lookups at once: ledger lines (`verify.reports.ledger_check.LineChecker`) and the command
line's batch rows (`verify.lookup.batch.store_verifier`, `invoice-verify verify --batch`).
`GET /invoices/lookup` and the API's batch rows give the same facts through
`verify.lookup.verification` (docs/lookups.md):

- a miss dated before the authority's verification window is `outside_window`
  (`fallback.lookup.window`);
- a Chinese invoice asked without the 查验 platform's second factor for its type shows its
  status only, to a caller who is no party to it (`fallback.lookup.second_factor`);
- a Vietnamese invoice carries its seller's registry status, and a `valid` one the warnings
  of a closed, suspended or absent seller (`fallback.lookup.seller_status`).

Sellers are read from the registry once per group of answers (a ledger chunk), not once per
line; a registry that cannot be read leaves the answers without the status, as a lookup's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fallback.lookup.query import LookupQuery
from fallback.lookup.second_factor import guard
from fallback.lookup.seller_status import read_sellers, with_seller_status
from fallback.lookup.window import outside_window
from indexer.model import SCHEME_TZ, Invoice
from indexer.registry import Taxpayer
from indexer.store.registry import RegistryStore
from verify.settings import Settings

Sellers = dict[str, Taxpayer] | None


def _today(scheme: str) -> date:
    return datetime.now(SCHEME_TZ[scheme]).date()


@dataclass(frozen=True, slots=True)
class AnswerFacts:
    """`registry` None: no seller status. `second_factor`: as `INVOICE_CN_SECOND_FACTOR`;
    `window_years`: as `INVOICE_VERIFICATION_WINDOW_YEARS` (0: no window)."""

    registry: RegistryStore | None
    second_factor: bool = True
    window_years: int = 5
    today: Callable[[str], date] = _today

    @classmethod
    def of(cls, settings: Settings, registry: RegistryStore | None) -> AnswerFacts:
        return cls(registry, settings.cn_second_factor, settings.verification_window_years)

    async def sellers(self, invoices: Iterable[Invoice | None]) -> Sellers:
        """The registry's record of the Vietnamese sellers of `invoices`, in one read (None:
        it could not be read)."""
        wanted = {
            inv.seller_tax_id
            for inv in invoices
            if inv is not None and inv.scheme == "vn" and inv.seller_tax_id
        }
        return await read_sellers(self.registry, wanted)

    def apply(
        self,
        answer: dict[str, Any],
        query: LookupQuery,
        invoice: Invoice | None,
        sellers: Sellers,
        *,
        party: bool,
    ) -> dict[str, Any]:
        """`answer` with the facts a lookup by the same caller (`party`: the invoice's seller
        or buyer, or an admin) with the same fields gives."""
        if invoice is None:
            return outside_window(answer, query, self.today(query.scheme), self.window_years)
        if self.second_factor and not party:
            answer = guard(answer, invoice, query.match)
        seller = invoice.seller_tax_id
        if invoice.scheme != "vn" or seller is None or sellers is None:
            return answer
        return with_seller_status(
            answer, sellers.get(seller), invoice.issued_at.date(), self.today("vn")
        )

    async def one(
        self, answer: dict[str, Any], query: LookupQuery, invoice: Invoice | None
    ) -> dict[str, Any]:
        """One answer, for a caller who sees every invoice whole (the command line)."""
        return self.apply(answer, query, invoice, await self.sellers([invoice]), party=True)
