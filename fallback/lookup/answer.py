"""The verification answer (docs/formats.md#lookups-and-the-verification-answer), built in
one place."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fallback.lookup.query import LookupQuery, MatchFields
from indexer.keys import VnKey
from indexer.model import Invoice, Lifecycle, Relation
from indexer.money import format_amount

_STATUS_OF_LIFECYCLE = {
    Lifecycle.CANCELLED: "cancelled",
    Lifecycle.REPLACED: "replaced",
    Lifecycle.ADJUSTED: "adjusted",
    Lifecycle.PARTIALLY_REVERSED: "partially_reversed",  # cn: 部分红冲
    Lifecycle.REVERSED: "reversed",  # cn: 已全额红冲
}


def utc_stamp(moment: datetime) -> str:
    if moment.tzinfo is not UTC:  # `datetime.now(UTC)`, the usual case, needs no conversion
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def _differs(name: str, given: str | None, recorded: str | None) -> dict[str, str | None]:
    return {"field": name, "given": given, "recorded": recorded}


def mismatches(invoice: Invoice, match: MatchFields) -> list[dict[str, str | None]]:
    """Every caller-supplied field that differs from the record; amounts compare exactly."""
    out: list[dict[str, str | None]] = []
    if match.total_amount is not None and match.total_amount != invoice.amounts.total:
        out.append(
            _differs("total_amount", _amount(match.total_amount), _amount(invoice.amounts.total))
        )
    if match.amount is not None and match.amount != invoice.amounts.before_tax:
        out.append(_differs("amount", _amount(match.amount), _amount(invoice.amounts.before_tax)))
    if match.tax_amount is not None and match.tax_amount != invoice.amounts.tax:
        out.append(_differs("tax_amount", _amount(match.tax_amount), _amount(invoice.amounts.tax)))
    if match.issued_on is not None and match.issued_on != invoice.issued_at.date():
        out.append(
            _differs("issued_on", match.issued_on.isoformat(), invoice.issued_at.date().isoformat())
        )
    if match.check_code is not None:
        recorded = invoice.check_code or ""
        if not recorded.endswith(match.check_code) or not recorded:
            # The recorded check code is not echoed: knowing it is what the check proves.
            out.append(_differs("check_code", match.check_code, None))
    if match.buyer_tax_id is not None and match.buyer_tax_id != invoice.buyer_tax_id:
        out.append(_differs("buyer_tax_id", match.buyer_tax_id, invoice.buyer_tax_id))
    return out


def _relation(rel: Relation) -> dict[str, Any]:
    return {
        "relation": rel.kind.value,
        "id": rel.key.doc_id if rel.key else None,
        "key": rel.key.as_dict() if rel.key else None,
        "notice_id": rel.notice_id,
        "reason": rel.reason,
        "at": utc_stamp(rel.at) if rel.at else None,
    }


class Summaries:
    """Summaries by invoice object, each kept with its object (so the id cannot be reused
    while the entry lives). The embedded store hands out the same immutable `Invoice` for a
    document until its file changes (`indexer/store/sqlite.py`), so a repeated lookup reuses
    the summary instead of formatting dates and amounts again; every caller gets its own
    copy. One per lookup path (`fallback.lookup.resilience.Resilience`, so one per app);
    bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._by_id: dict[int, tuple[Invoice, dict[str, Any]]] = {}
        self._max = max_entries

    def summary(self, invoice: Invoice) -> dict[str, Any]:
        hit = self._by_id.get(id(invoice))
        if hit is None or hit[0] is not invoice:
            if len(self._by_id) >= self._max:
                self._by_id.clear()
            hit = self._by_id[id(invoice)] = (invoice, _summary(invoice))
        summary = hit[1].copy()
        if summary["original"] is not None:
            summary["original"] = dict(summary["original"])
        return summary


def invoice_summary(invoice: Invoice, memo: Summaries | None = None) -> dict[str, Any]:
    """The invoice as answers show it: from `memo` when given, else formatted afresh."""
    return _summary(invoice) if memo is None else memo.summary(invoice)


def _code_issued(invoice: Invoice) -> bool | None:
    """vn: whether the invoice is issued with the GDT's code (series C) or is a no-code
    invoice (series K), as the portal's processing state says (docs/vn-rules.md §1.2);
    None for Chinese invoices."""
    key = invoice.key
    return key.series.startswith("C") if isinstance(key, VnKey) else None


def _summary(invoice: Invoice) -> dict[str, Any]:
    issued_at, amounts = invoice.issued_at, invoice.amounts
    return {
        "id": invoice.doc_id,
        "issued_at": issued_at.isoformat(),
        "issued_on": issued_at.date().isoformat(),
        "currency": invoice.currency,
        "amount_before_tax": format_amount(amounts.before_tax),
        "tax_amount": format_amount(amounts.tax),
        "total_amount": format_amount(amounts.total),
        "seller_tax_id": invoice.seller_tax_id,
        "seller_name": invoice.seller_name,
        "buyer_tax_id": invoice.buyer_tax_id,
        "buyer_name": invoice.buyer_name,
        "authority_code": invoice.authority_code,
        "code_issued": _code_issued(invoice),
        "type_code": invoice.type_code,
        "kind": invoice.kind.value,
        "lifecycle": invoice.lifecycle.value,
        "original": invoice.original.as_dict() if invoice.original else None,
    }


def build_answer(
    query: LookupQuery,
    invoice: Invoice | None,
    *,
    source: str = "primary",
    degraded: bool = False,
    as_of: datetime | None = None,
    summaries: Summaries | None = None,
) -> dict[str, Any]:
    stamp = utc_stamp(as_of or datetime.now(UTC))
    if invoice is None:
        return {
            "status": "not_found",
            "scheme": query.scheme,
            "source": source,
            "degraded": degraded,
            "as_of": stamp,
            "gap_id": None,
            "key": query.asked(),
            "invoice": None,
            "mismatches": [],
            "related": [],
        }
    found = mismatches(invoice, query.match)
    status = _STATUS_OF_LIFECYCLE.get(invoice.lifecycle) or ("mismatch" if found else "valid")
    return {
        "status": status,
        "scheme": invoice.scheme,
        "source": source,
        "degraded": degraded,
        "as_of": stamp,
        "gap_id": None,
        "key": invoice.key.as_dict(),
        "invoice": invoice_summary(invoice, summaries),
        "mismatches": found,
        "related": [_relation(r) for r in invoice.relations] if invoice.relations else [],
    }
