"""The second factor a Chinese lookup must carry, per invoice type, before the answer shows
the invoice's face (docs/cn-rules.md §4.1, the national 查验 platform's inputs): the issue
date plus the amount before tax for special and motor-vehicle invoices, the last 6 digits
of the check code for the ordinary family (`04`, `10`, `11`, `14`), the total including
tax for 数电 invoices (a 20-digit number, no code) and used-car invoices.

Without it the answer keeps its status but withholds the amounts and the parties, and names
what was missing. Only the factor the type asks for counts: a 专票 checked by its total, a
普票 by its amount or a 数电 invoice by its amount before tax is still withheld."""

from __future__ import annotations

from typing import Any

from fallback.lookup.query import MatchFields
from indexer.model import Invoice

AMOUNT = "amount"
CHECK_CODE = "check_code_last6"
TOTAL = "total_amount"
ISSUED_ON = "issued_on"

_BY_TYPE = {
    "01": AMOUNT,
    "02": AMOUNT,
    "03": AMOUNT,
    "08": AMOUNT,
    "20": AMOUNT,
    "04": CHECK_CODE,
    "10": CHECK_CODE,
    "11": CHECK_CODE,
    "14": CHECK_CODE,
    "15": TOTAL,
}

WITHHELD = ("amounts", "parties")
_AMOUNT_FIELDS = ("amount_before_tax", "tax_amount", "total_amount")
_PARTY_FIELDS = ("seller_tax_id", "seller_name", "buyer_tax_id", "buyer_name")
#: Mismatch fields whose recorded value is the face the answer withholds.
_MISMATCH_FIELDS = frozenset({"amount", "total_amount", "tax_amount", "buyer_tax_id"})


def required_factor(invoice: Invoice) -> str | None:
    """The type's factor besides the date; None for invoices other than Chinese ones."""
    if invoice.scheme != "cn":
        return None
    if getattr(invoice.key, "code", None) is None:
        return TOTAL  # 数电: a 20-digit number without a code
    return _BY_TYPE.get(invoice.type_code or "", AMOUNT)


def _given(factor: str, match: MatchFields) -> bool:
    if factor == AMOUNT:
        return match.amount is not None
    if factor == TOTAL:
        return match.total_amount is not None
    return match.check_code is not None


def missing_factor(invoice: Invoice, match: MatchFields) -> str | None:
    """What the lookup lacks of the platform's inputs for this invoice (the type's factor
    first, then the date), or None when it carries them."""
    factor = required_factor(invoice)
    if factor is None:
        return None
    if not _given(factor, match):
        return factor
    return ISSUED_ON if match.issued_on is None else None


def guard(answer: dict[str, Any], invoice: Invoice | None, match: MatchFields) -> dict[str, Any]:
    """`answer` as is when the lookup carries the platform's inputs for `invoice`; else its
    status only: amounts and parties withheld, the missing input named (`required_factors`
    lists both the type asks for)."""
    if invoice is None or not answer.get("invoice"):
        return answer
    missing = missing_factor(invoice, match)
    if missing is None:
        return answer
    hidden = dict.fromkeys(_AMOUNT_FIELDS + _PARTY_FIELDS)
    mismatches = [
        {**m, "recorded": None} if m["field"] in _MISMATCH_FIELDS else m
        for m in answer["mismatches"]
    ]
    return {
        **answer,
        "invoice": {**answer["invoice"], **hidden},
        "mismatches": mismatches,
        "withheld": list(WITHHELD),
        "missing_factor": missing,
        "required_factors": [ISSUED_ON, required_factor(invoice)],
    }
