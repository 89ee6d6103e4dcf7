"""The verification answer (ARCHITECTURE.md "Verification answer"), built in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from indexer.model import Invoice, Lifecycle, Relation
from indexer.money import format_amount
from verify.lookup import LookupQuery, MatchFields

_STATUS_OF_LIFECYCLE = {
    Lifecycle.CANCELLED: "cancelled",
    Lifecycle.REPLACED: "replaced",
    Lifecycle.ADJUSTED: "adjusted",
}


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def mismatches(invoice: Invoice, match: MatchFields) -> list[dict[str, str | None]]:
    """Every caller-supplied field that differs from the record; amounts compare exactly."""
    out: list[dict[str, str | None]] = []

    def differs(name: str, given: str | None, recorded: str | None) -> None:
        out.append({"field": name, "given": given, "recorded": recorded})

    if match.total_amount is not None and match.total_amount != invoice.amounts.total:
        differs("total_amount", _amount(match.total_amount), _amount(invoice.amounts.total))
    if match.amount is not None and match.amount != invoice.amounts.before_tax:
        differs("amount", _amount(match.amount), _amount(invoice.amounts.before_tax))
    if match.issued_on is not None and match.issued_on != invoice.issued_at.date():
        differs("issued_on", match.issued_on.isoformat(), invoice.issued_at.date().isoformat())
    if match.check_code is not None:
        recorded = invoice.check_code or ""
        if not recorded.endswith(match.check_code) or not recorded:
            # The recorded check code is not echoed: knowing it is what the check proves.
            differs("check_code", match.check_code, None)
    if match.buyer_tax_id is not None and match.buyer_tax_id != invoice.buyer_tax_id:
        differs("buyer_tax_id", match.buyer_tax_id, invoice.buyer_tax_id)
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


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.doc_id,
        "issued_at": invoice.issued_at.isoformat(),
        "issued_on": invoice.issued_at.date().isoformat(),
        "currency": invoice.currency,
        "amount_before_tax": _amount(invoice.amounts.before_tax),
        "tax_amount": _amount(invoice.amounts.tax),
        "total_amount": _amount(invoice.amounts.total),
        "seller_tax_id": invoice.seller_tax_id,
        "seller_name": invoice.seller_name,
        "buyer_tax_id": invoice.buyer_tax_id,
        "buyer_name": invoice.buyer_name,
        "authority_code": invoice.authority_code,
        "type_code": invoice.type_code,
        "kind": invoice.kind.value,
        "lifecycle": invoice.lifecycle.value,
        "original": invoice.original.as_dict() if invoice.original else None,
    }


def build_answer(query: LookupQuery, invoice: Invoice | None, *, source: str = "primary",
                 degraded: bool = False, as_of: datetime | None = None) -> dict[str, Any]:
    stamp = utc_stamp(as_of or datetime.now(UTC))
    base: dict[str, Any] = {
        "scheme": query.scheme, "source": source, "degraded": degraded, "as_of": stamp,
        "gap_id": None,
    }
    if invoice is None:
        return {"status": "not_found", **base, "key": query.asked(), "invoice": None,
                "mismatches": [], "related": []}
    found = mismatches(invoice, query.match)
    status = _STATUS_OF_LIFECYCLE.get(invoice.lifecycle) or ("mismatch" if found else "valid")
    return {
        "status": status, **base, "scheme": invoice.scheme, "key": invoice.key.as_dict(),
        "invoice": invoice_summary(invoice), "mismatches": found,
        "related": [_relation(r) for r in invoice.relations],
    }
