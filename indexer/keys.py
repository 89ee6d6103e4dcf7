"""Invoice keys of both schemes, their document ids, and their validation from raw fields.

The same function validates a key wherever one arrives: an invoice in a package, the
`original` of a replacement, the target of a cancel notice, a lookup query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from indexer import cn, vn
from indexer.rules import RuleConfig, Severity, Violation
from indexer.text import ascii_int, is_ascii_digits, text_problem


@dataclass(frozen=True, slots=True)
class VnKey:
    seller_tax_id: str
    template: str
    series: str
    number: int
    scheme: Literal["vn"] = "vn"

    @property
    def doc_id(self) -> str:
        return f"vn:{self.seller_tax_id}:{self.template}:{self.series}:{self.number}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "seller_tax_id": self.seller_tax_id,
            "template": self.template,
            "series": self.series,
            "number": self.number,
        }


@dataclass(frozen=True, slots=True)
class CnKey:
    """`code` is None for a fully digitalised (数电) invoice, whose `number` has 20 digits."""

    code: str | None
    number: str
    scheme: Literal["cn"] = "cn"

    @property
    def doc_id(self) -> str:
        return f"cn:{self.code}:{self.number}" if self.code else f"cn:{self.number}"

    def as_dict(self) -> dict[str, Any]:
        return {"invoice_code": self.code, "invoice_number": self.number}


InvoiceKey = VnKey | CnKey


def key_from_doc_id(doc_id: str) -> InvoiceKey | None:
    """Inverse of `doc_id`, for ids that arrive in URLs; None when malformed."""
    if len(doc_id) > _MAX_DOC_ID or text_problem(doc_id) is not None:
        return None
    parts = doc_id.split(":")
    if parts[0] == "vn" and len(parts) == 5:
        number = ascii_int(parts[4], max_digits=_NUMBER_DIGITS)
        return None if number is None else VnKey(parts[1], parts[2], parts[3], number)
    if parts[0] == "cn" and len(parts) == 3:
        return CnKey(parts[1], parts[2])
    if parts[0] == "cn" and len(parts) == 2:
        return CnKey(None, parts[1])
    return None


#: An invoice number has at most this many digits (vn.MAX_NUMBER); longer is out of range,
#: and is never given to `int()`, which refuses more than 4,300 digits.
_NUMBER_DIGITS = len(str(vn.MAX_NUMBER))
#: The longest doc id: a 14-character tax id, template, 6-character series, number.
_MAX_DOC_ID = 128


class _Wrong:
    """A field that is present but neither text nor an integer."""


WRONG = _Wrong()
#: What a negative or huge integer key part reads as: digits no key part accepts.
_OUT_OF_RANGE = "9" * 19


def _text(raw: Mapping[str, Any], name: str) -> str | _Wrong | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        # `str()` of an int past 4,300 digits raises; nothing past 18 digits is a key part
        return str(value) if ascii_int(value) is not None else _OUT_OF_RANGE
    if isinstance(value, str):
        return value.strip()
    return WRONG


#: A template or series of an invoice this index never holds, as written: the legacy
#: `01GTKT0/001` and `AA/21E` of Decrees 51/2010 and 04/2014 (vn-einvoice §1.1); the
#: related-invoice fields take up to 11 and 8 characters (§5.6). No `:`, which separates
#: the parts of a document id.
_EXTERNAL_PART = {
    "template": re.compile(r"[0-9A-Za-z/._-]{1,11}", re.ASCII),
    "series": re.compile(r"[0-9A-Za-z/._-]{1,8}", re.ASCII),
}


def vn_key(
    raw: Mapping[str, Any], cfg: RuleConfig, prefix: str = "", *, external: bool = False
) -> tuple[VnKey | None, list[Violation]]:
    """Validate (seller_tax_id, template, series, number) per vn-einvoice §1 and §3.
    `external`: the key of a related invoice that is not a Decree 123 e-invoice (§5.6
    LHDCLQuan 2-4), whose template and series are kept as written (`01GTKT0/001`, `AA/21E`)."""
    out: list[Violation] = []
    fields = {name: _text(raw, name) for name in ("seller_tax_id", "template", "series", "number")}
    for name, value in fields.items():
        if value is WRONG:
            out.append(
                cfg.violation("invoice.field.invalid", prefix + name, "text or an integer expected")
            )
        elif not value:
            out.append(cfg.violation("invoice.field.required", prefix + name))
    tax_id, template, series, number_text = (
        v if isinstance(v, str) else None for v in fields.values()
    )
    if tax_id and not vn.tax_id_valid(tax_id):
        out.append(cfg.violation("vn.tax_id.invalid", prefix + "seller_tax_id", tax_id))
    if external:
        for name, part in (("template", template), ("series", series)):
            if part and not _EXTERNAL_PART[name].fullmatch(part):
                out.append(cfg.violation("vn.original.external_key", prefix + name, part))
    elif template and template not in vn.TEMPLATES:
        out.append(cfg.violation("vn.template.invalid", prefix + "template", template))
    if series and template and not external:
        series = vn.normalise_series(series.upper(), template)
        parsed = vn.parse_series(series)
        if parsed is None:
            out.append(cfg.violation("vn.series.invalid", prefix + "series", series))
        elif parsed.year < vn.FIRST_SERIES_YEAR:
            out.append(cfg.violation("vn.series.year_out_of_range", prefix + "series", series))
        elif parsed.kind == "F":
            out.append(cfg.violation("vn.series.letter_f", prefix + "series", series))
    number: int | None = None
    if number_text:
        number = ascii_int(number_text, max_digits=_NUMBER_DIGITS)
        if number is None and is_ascii_digits(number_text, max_digits=len(number_text)):
            shown = number_text if len(number_text) <= 20 else number_text[:17] + "..."
            out.append(cfg.violation("vn.number.out_of_range", prefix + "number", shown))
        elif number is None:
            out.append(cfg.violation("invoice.field.invalid", prefix + "number", "not a number"))
        elif not 1 <= number <= vn.MAX_NUMBER:
            out.append(cfg.violation("vn.number.out_of_range", prefix + "number", number_text))
    if any(v.severity is Severity.ERROR for v in out):
        return None, out
    assert tax_id
    assert template
    assert series
    assert number is not None
    return VnKey(vn.normalise_tax_id(tax_id), template, series, number), out


def cn_key(
    raw: Mapping[str, Any], cfg: RuleConfig, prefix: str = ""
) -> tuple[CnKey | None, list[Violation]]:
    """Validate (invoice_code, invoice_number) per cn-invoice §1-§2 and §6.2."""
    out: list[Violation] = []
    code_raw, number_raw = _text(raw, "invoice_code"), _text(raw, "invoice_number")
    for name, value in (("invoice_code", code_raw), ("invoice_number", number_raw)):
        if value is WRONG:
            out.append(cfg.violation("invoice.field.invalid", prefix + name, "text expected"))
    if out:
        return None, out
    code = code_raw if isinstance(code_raw, str) and code_raw else None
    number = number_raw if isinstance(number_raw, str) else None
    if not number:
        out.append(cfg.violation("invoice.field.required", prefix + "invoice_number"))
        return None, out
    if code is not None and not cn.CODE_RE.fullmatch(code):
        out.append(cfg.violation("cn.code.invalid", prefix + "invoice_code", code))
    elif code is not None and not cn.NUMBER8_RE.fullmatch(number):
        out.append(
            cfg.violation(
                "cn.number.invalid",
                prefix + "invoice_number",
                "an invoice with a code has an 8-digit number",
            )
        )
    elif code is None and not cn.NUMBER20_RE.fullmatch(number):
        out.append(
            cfg.violation(
                "cn.number.invalid",
                prefix + "invoice_number",
                "an invoice without a code has a 20-digit number",
            )
        )
    if out:
        return None, out
    return CnKey(code, number), out


def key_from_fields(
    raw: Mapping[str, Any], scheme: str, cfg: RuleConfig, prefix: str = ""
) -> tuple[InvoiceKey | None, list[Violation]]:
    if scheme == "vn":
        return vn_key(raw, cfg, prefix)
    if scheme == "cn":
        return cn_key(raw, cfg, prefix)
    return None, [cfg.violation("invoice.scheme.unknown", prefix + "scheme", str(scheme))]
