"""The second factor a Chinese lookup must carry, per invoice type, before the answer shows
the invoice's face (docs/cn-rules.md §4.1, the national 查验 platform's inputs): the issue
date plus the amount before tax for special and motor-vehicle invoices, the last 6 digits
of the check code for the ordinary family (`04`, `10`, `11`, `14`), the total including
tax for 数电 invoices (a 20-digit number, no code) and used-car invoices.

Without it the answer keeps its status but withholds the amounts and the parties, and names
what was missing. Only the factor the type asks for counts: a 专票 checked by its total, a
普票 by its amount or a 数电 invoice by its amount before tax is still withheld. A factor given
but wrong proves no more than one left out (the platform answers 查验不一致 and shows nothing):
the answer is `mismatch`, withheld the same way, and names the factor that did not match; no
recorded value is echoed in its mismatches, the date included."""

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
#: The mismatch field each factor is compared as (`fallback.lookup.answer.mismatches`).
_MISMATCH_OF = {AMOUNT: "amount", TOTAL: "total_amount", CHECK_CODE: "check_code"}


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


def mismatched_factor(invoice: Invoice, mismatches: list[dict[str, Any]]) -> str | None:
    """The platform's input for `invoice` that the lookup gave but that differs from the
    record (the type's factor first, then the date), or None."""
    factor = required_factor(invoice)
    if factor is None:
        return None
    fields = {m["field"] for m in mismatches}
    if _MISMATCH_OF[factor] in fields:
        return factor
    return ISSUED_ON if ISSUED_ON in fields else None


def guard(answer: dict[str, Any], invoice: Invoice | None, match: MatchFields) -> dict[str, Any]:
    """`answer` as is when the lookup carries the platform's inputs for `invoice` and they
    match; else its status only: amounts and parties withheld, no recorded value echoed, the
    missing (`missing_factor`) or wrong (`mismatched_factor`) input named (`required_factors`
    lists both the type asks for)."""
    if invoice is None or not answer.get("invoice"):
        return answer
    missing = missing_factor(invoice, match)
    wrong = None if missing else mismatched_factor(invoice, answer["mismatches"])
    if missing is None and wrong is None:
        return answer
    hidden = dict.fromkeys(_AMOUNT_FIELDS + _PARTY_FIELDS)
    named = {"missing_factor": missing} if missing else {"mismatched_factor": wrong}
    return {
        **answer,
        "invoice": {**answer["invoice"], **hidden},
        "mismatches": [{**m, "recorded": None} for m in answer["mismatches"]],
        "withheld": list(WITHHELD),
        **named,
        "required_factors": [ISSUED_ON, required_factor(invoice)],
    }
