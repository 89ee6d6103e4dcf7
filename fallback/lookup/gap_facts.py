"""What a lookup adds to an answer, given to the answers of resolved gaps too
(docs/outages.md#gap-ledger): a gap's final answer (`fallback.lookup.gap_answers`) is the
bare lookup answer of the day it was resolved. Whoever shows it (`GET /gaps`, `GET /gaps/{id}`,
the gap callback) first passes it through `GapFacts`, which adds, as of now and as a lookup
does (`verify.lookup.verification`):

- the Vietnamese seller's registry status (`seller_status`) and its `warnings`
  (`fallback.lookup.seller_status`);
- for a miss, `outside_window` and its reason when the invoice predates the authority's
  verification window (`fallback.lookup.window`).

The Chinese second factor depends on who reads the answer (its parties see it whole), so it
is applied per caller: `second_factor_view` gives `fallback.lookup.second_factor.guard` the
invoice as far as it reads it. A gap keeps no amounts or check code of the lookup that
recorded it, so to anyone but the invoice's parties a gap's Chinese answer is its status
only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from fallback.breaker import utc_now
from fallback.gaps import Gap
from fallback.lookup.gap_answers import gap_query
from fallback.lookup.second_factor import guard
from fallback.lookup.seller_status import read_sellers, with_seller_status
from fallback.lookup.window import outside_window
from indexer.keys import key_from_doc_id
from indexer.model import SCHEME_TZ, Amounts, Invoice
from indexer.registry import Taxpayer
from indexer.store.registry import RegistryStore


class GapFacts:
    """`window_years`: the verification window (0: none), as `INVOICE_VERIFICATION_WINDOW_YEARS`;
    `registry` None: no seller status (an intake built without a registry)."""

    def __init__(self, registry: RegistryStore | None, *, window_years: int,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.registry = registry
        self.window_years = window_years
        self._clock = clock

    async def _sellers(self, answers: Sequence[dict[str, Any]]) -> dict[str, Taxpayer] | None:
        wanted = {a["invoice"]["seller_tax_id"] for a in answers
                  if a.get("scheme") == "vn" and a.get("invoice")
                  and a["invoice"].get("seller_tax_id")}
        return await read_sellers(self.registry, wanted)

    async def answers(self, gaps: Sequence[Gap]) -> dict[str, dict[str, Any]]:
        """Each resolved gap's answer (by gap id) with the facts a lookup gives now; gaps
        without an answer (open ones) are left out."""
        resolved = [g for g in gaps if g.answer]
        sellers = await self._sellers([g.answer for g in resolved if g.answer])
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for gap in resolved:
            answer = gap.answer
            assert answer is not None
            today = now.astimezone(SCHEME_TZ[gap.scheme]).date()
            summary = answer.get("invoice")
            if not summary:
                with contextlib.suppress(ValueError):  # an unreadable key: as recorded
                    answer = outside_window(answer, gap_query(gap), today, self.window_years)
            elif gap.scheme == "vn" and sellers is not None and summary.get("seller_tax_id"):
                issued_on = datetime.fromisoformat(summary["issued_on"]).date()
                answer = with_seller_status(answer, sellers.get(summary["seller_tax_id"]),
                                            issued_on, today)
            out[gap.id] = answer
        return out

    async def answer(self, gap: Gap) -> dict[str, Any] | None:
        """One gap's answer with the facts (the gap callback's)."""
        return (await self.answers([gap])).get(gap.id)


def second_factor_view(answer: dict[str, Any]) -> Invoice | None:
    """The Chinese invoice of an answer as far as `second_factor.guard` reads it (its key
    and type; the rest of the answer is read from the answer itself), or None when the
    answer holds none. Raises ValueError for a summary it cannot read."""
    summary = answer.get("invoice")
    if answer.get("scheme") != "cn" or not summary:
        return None
    key = key_from_doc_id(str(summary.get("id")))
    if key is None:
        raise ValueError(f"not an invoice id: {summary.get('id')!r}")
    zero = Decimal(0)
    return Invoice(key=key, issued_at=datetime.fromisoformat(summary["issued_at"]),
                   currency=str(summary.get("currency")), amounts=Amounts(zero, zero, zero),
                   package_id="", type_code=summary.get("type_code"))


def guard_gap_answer(answer: dict[str, Any], gap: Gap) -> dict[str, Any]:
    """`answer` as a lookup with the gap's own inputs (its key and `issued_on`) answers a
    caller who is no party to the invoice: without the type's second factor, its status
    only. An answer whose invoice cannot be read is withheld the same way."""
    try:
        view = second_factor_view(answer)
        match = gap_query(gap).match
    except (ValueError, KeyError, TypeError):
        view = None
        match = None
    if view is not None and match is not None:
        return guard(answer, view, match)
    if answer.get("scheme") == "cn" and answer.get("invoice"):
        return {**answer, "invoice": None, "withheld": ["amounts", "parties"]}
    return answer
