"""Chinese invoice identity (docs/cn-rules.md §1-§3): codes, numbers, type codes."""

from __future__ import annotations

import re

CODE_RE = re.compile(r"\d{10}|\d{12}", re.ASCII)
NUMBER8_RE = re.compile(r"\d{8}", re.ASCII)
NUMBER20_RE = re.compile(r"\d{20}", re.ASCII)
CHECK_CODE_RE = re.compile(r"\d{20}", re.ASCII)
TAX_ID_RE = re.compile(r"[0-9A-Z]{15,20}", re.ASCII)

#: QR / verification type codes (§3.2). Unknown codes are rejected, not guessed.
TYPE_CODES: dict[str, str] = {
    "01": "增值税专用发票 (special VAT invoice)",
    "02": "货物运输业增值税专用发票 (freight special invoice)",
    "03": "机动车销售统一发票 (motor-vehicle sales invoice)",
    "04": "增值税普通发票 (ordinary VAT invoice)",
    "08": "增值税电子专用发票 (e-special invoice)",
    "10": "增值税电子普通发票 (ordinary e-invoice)",
    "11": "增值税普通发票(卷票) (roll invoice)",
    "14": "通行费增值税电子普通发票 (toll e-invoice)",
    "15": "二手车销售统一发票 (used-car invoice)",
    "20": "增值税电子专用发票 (e-special invoice, QR form)",
    "31": "电子发票(增值税专用发票) (fully digitalised, special)",
    "32": "电子发票(普通发票) (fully digitalised, ordinary)",
    "33": "数电 motor-vehicle invoice",
    "34": "数电 used-car invoice",
    "51": "电子发票(铁路电子客票) (rail ticket)",
    "61": "电子发票(航空运输电子客票行程单) (air itinerary)",
}

#: Type codes that are the same kind of document under two numbering systems (§3.2: QR `20`
#: is the platform's `08`), so a declared type equal to either is not a mismatch.
_EQUIVALENT = {"20": "08", "08": "08"}

_DIGIT8_10 = {"1": "01", "5": "01", "3": "04", "6": "04", "2": "02", "7": "02"}
_SUFFIX_12 = {"04": "04", "05": "04", "06": "11", "07": "11", "11": "10", "12": "14", "13": "08"}


#: The ordinary-invoice family (普票: paper, electronic, roll, toll): the platform checks them
#: by the last 6 digits of their 20-digit check code (§4.1), which each one carries (§3.1).
CHECK_CODE_TYPES = frozenset({"04", "10", "11", "14"})


def type_from_code(code: str) -> str | None:
    """The type code implied by a pre-数电 invoice code (§1.5), or None if unknown. A
    12-digit code not starting with 0 is a motor-vehicle invoice (`03`) when its digit 8 is
    2 (§1.2), but only under the state tax (digit 1 = 1): the legacy layout of §1.4 puts a
    tax office in digit 1 (1 state, 2 local) and an industry in digit 8, and a local-tax
    invoice is never a VAT invoice."""
    if not CODE_RE.fullmatch(code):
        return None
    if len(code) == 10:
        return _DIGIT8_10.get(code[7])
    if len(code) == 12:
        if code[0] == "0":
            return _SUFFIX_12.get(code[10:12])
        if code[0] == "1" and code[7] == "2":
            return "03"
    return None


def outside_vat_layouts(code: str) -> bool:
    """A 12-digit code that no VAT layout fits (§1.4): a local-tax invoice (digit 1 = 2) or
    no known layout at all (3-9). Not verifiable, whatever type is declared for it."""
    return len(code) == 12 and code[0] not in "01"


def same_type(a: str, b: str) -> bool:
    return _EQUIVALENT.get(a, a) == _EQUIVALENT.get(b, b)


#: Electronic invoices of the VAT invoice system (§1.2: code suffix 11, 12, 13): they are not
#: paper, so they are red-lettered, never voided (§4.4: 作废 is for "paper invoices").
ELECTRONIC_TYPES = frozenset({"08", "10", "14"})

#: Fully digitalised types (§3.2): a 31 or 32 QR may carry the printed code of a 数电 paper
#: invoice, whose type is not the code's.
DIGITAL_TYPES = frozenset({"31", "32", "33", "34", "51", "61"})


def type_disagrees_with_code(qr_type: str, derived: str | None) -> bool:
    """Does a QR's known pre-数电 type contradict the type its invoice code implies?"""
    return (
        derived is not None
        and qr_type in TYPE_CODES
        and qr_type not in DIGITAL_TYPES
        and not same_type(qr_type, derived)
    )


def type_from_number20(number: str) -> str:
    """A fully digitalised invoice: channel digit 8 = air, 9 = rail, otherwise ordinary (§2)."""
    return {"8": "61", "9": "51"}.get(number[4], "32")
