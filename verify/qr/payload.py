"""QR text -> which invoice it names, and the fields it lets us check.

Accepted shapes, tried in this order (docs/formats.md#qr-payloads documents them for callers):

1. Ours (`GET /invoices/{id}/qr.png`): `IVQR1|vn|<seller MST>|<template>|<series>|<number>|
   <total_amount>|<issued_on>` or `IVQR1|cn|<code, empty for 数电>|<number>|<total_amount>|
   <issued_on>`; the last two may be empty. A bare document id (`vn:0100109106:1:C22TAA:123`,
   `cn:044031900111:12345678`, `cn:<20 digits>`) is read too.
2. A URL (`http(s)://`): its query string, and a query in its fragment, read as parameters
   (names case-insensitive). Chinese 查验 links: `fpdm` code, `fphm` number, `kprq` date,
   `jym` check code, `je` amount before tax, `jshj` total. Vietnamese lookup links: `nbmst`
   or `mst` seller, `khmshdon` template, `khhdon` series (the 7-character template+series
   form too), `shdon` number, `mccqt` authority code, `tgtttbso` total, `tgtthue` tax
   amount, `nlap` issue date.
3. The Chinese invoice QR (docs/cn-rules.md#3-the-invoice-qr-code): positional,
   comma-separated, version `01`.
4. A Vietnamese authority code alone (MCCQT: 34 hex, or a cash-register `M1-YY-XXXXX-…`).
5. Vietnamese `name=value` pairs (same names as 2) separated by `;`, `&`, `|` or new lines.
6. A Vietnamese key string: `<MST><sep><template><sep><series><sep><number>[<sep><total>
   [<sep><issue date>]]`, or with template and series joined (`1C22TAA`); `sep` is one of
   `|`, `;`, `,`, tab.

The Vietnamese data standard's `DLQRCode` format was not published
(docs/vn-rules.md#9-lookups-and-qr-codes), so 2, 4, 5 and 6 are the shapes seen in practice,
kept deliberately narrow: anything else (a shop's URL, a Wi-Fi code) is `no_invoice_qr`,
answered with its text, never guessed at.

The Chinese QR's amount (field 4) is the amount before tax on pre-数电 invoices and the
total on 数电 invoices by the common reading, which is unconfirmed; the choice is
`INVOICE_QR_CN_AMOUNT` (`CnAmount`, docs/qr.md#amount-of-a-chinese-qr), and each parsed
payload says which it used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fallback.lookup.query import LookupQuery, MatchFields
from indexer import cn, vn
from indexer.keys import CnKey, VnKey, cn_key, vn_key
from indexer.money import AmountError, format_amount, parse_amount
from indexer.rules import RuleConfig
from indexer.text import is_ascii_digits

OUR_PREFIX = "IVQR1"
MAX_TEXT = 4096  # a QR holds at most 2,953 bytes of binary data
_VN_NAMES = {
    "nbmst": "seller_tax_id",
    "mst": "seller_tax_id",
    "khmshdon": "template",
    "khhdon": "series",
    "shdon": "number",
    "mccqt": "authority_code",
    "tgtttbso": "total_amount",
    "tgtthue": "tax_amount",
    "nlap": "issued_on",
}
_CN_NAMES = {
    "fpdm": "code",
    "fphm": "number",
    "kprq": "issued_on",
    "jym": "check_code",
    "je": "amount",
    "jshj": "total_amount",
}
_PAIR_SPLIT = re.compile(r"[;&|\n\r]+")
_FIELD_SPLIT = re.compile(r"[|;,\t]")
#: ASCII digits only (`re.ASCII`): `\d` alone matches every script's digits.
_TAX_ID = re.compile(r"\d{10}(?:-?\d{3})?|\d{12}", re.ASCII)
_CHECK = re.compile(r"\d{20}", re.ASCII)
_DATE8 = re.compile(r"\d{8}", re.ASCII)
_TYPE_CODE = re.compile(r"\d{2}", re.ASCII)


class CnAmount(StrEnum):
    """What the Chinese QR's amount field is compared with."""

    AUTO = "auto"  # before tax when the invoice has a code (pre-数电), total when not (数电)
    AMOUNT = "amount"  # always the amount before tax
    TOTAL = "total_amount"  # always the total including tax
    OFF = "off"  # never compared (only the key, date and check code are)


class NotInvoice(Exception):
    """The text is not an invoice QR we can read."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A QR text read: `payload` is what the answer shows; `query` what gets verified
    (None when the text is not an invoice QR, then `error` says why)."""

    payload: dict[str, Any]
    query: LookupQuery | None
    error: dict[str, Any] | None


class _Invalid(Exception):
    def __init__(self, payload: dict[str, Any], message: str, violations: list[Any]) -> None:
        super().__init__(message)
        self.payload, self.message, self.violations = payload, message, violations


def parse_payload(text: str, cfg: RuleConfig, cn_amount: CnAmount = CnAmount.AUTO) -> Parsed:
    raw = text
    t = text.strip().lstrip("\ufeff").strip()
    try:
        payload, query = _parse(t, cfg, cn_amount)
    except ValueError as exc:  # any field Python's own parsers choke on (int() past 4,300
        # digits, a digit of another script): the code is answered as unreadable, alone
        return Parsed(
            {"format": None, "raw": raw},
            None,
            {
                "code": "invalid_invoice_qr",
                "message": "the QR carries a field that cannot be read",
                "details": {"reason": str(exc)[:200]},
            },
        )
    except NotInvoice as exc:
        return Parsed(
            {"format": None, "raw": raw},
            None,
            {
                "code": "no_invoice_qr",
                "message": str(exc) or "this QR code does not name an invoice",
                "details": {},
            },
        )
    except _Invalid as exc:
        return Parsed(
            {**exc.payload, "raw": raw},
            None,
            {
                "code": "invalid_invoice_qr",
                "message": exc.message,
                "details": {"violations": exc.violations},
            },
        )
    return Parsed({**payload, "raw": raw}, query, None)


def _parse(t: str, cfg: RuleConfig, cn_amount: CnAmount) -> tuple[dict[str, Any], LookupQuery]:
    if not t or len(t) > MAX_TEXT:
        raise NotInvoice("the QR text is empty or longer than any invoice QR")
    if t.startswith(OUR_PREFIX + "|"):
        return _ours(t, cfg)
    if re.fullmatch(r"(vn|cn):[^\s]+", t):
        scheme, fields = _doc_id_fields(t)
        return _vn_or_cn("doc-id", scheme, fields, {}, cfg)
    if t.lower().startswith(("http://", "https://")):
        return _params("url", _url_params(t), cfg)
    if t.startswith("01,"):
        return _cn_csv(t, cfg, cn_amount)
    code = t.upper()
    if vn.AUTHORITY_CODE_RE.fullmatch(code) or vn.CASH_REGISTER_CODE_RE.fullmatch(code):
        payload = {"format": "vn-authority-code", "scheme": "vn", "authority_code": code}
        return payload, LookupQuery("vn", None, code, MatchFields())
    if "=" in t:
        return _params("pairs", _pairs(t), cfg)
    return _vn_fields(t, cfg)


def _doc_id_fields(t: str) -> tuple[str, dict[str, Any]]:
    """A document id's parts as text fields, validated by `vn_key`/`cn_key` like any other
    form (never `int()` on the number first: `vn:...:²` is an invalid key, not a crash)."""
    parts = t.split(":")
    if parts[0] == "vn" and len(parts) == 5:
        return "vn", dict(
            zip(("seller_tax_id", "template", "series", "number"), parts[1:], strict=True)
        )
    if parts[0] == "cn" and len(parts) in (2, 3):
        return "cn", {"code": parts[1] if len(parts) == 3 else None, "number": parts[-1]}
    raise NotInvoice("not a document id")


def _lower_keys(items: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in items:
        out.setdefault(name.strip().lower(), value.strip())
    return out


def _url_params(t: str) -> dict[str, str]:
    parts = urlsplit(t)
    items = parse_qsl(parts.query, keep_blank_values=True)
    if "=" in parts.fragment:
        items += parse_qsl(
            parts.fragment.partition("?")[2] or parts.fragment, keep_blank_values=True
        )
    return _lower_keys(items)


def _pairs(t: str) -> dict[str, str]:
    items = []
    for part in _PAIR_SPLIT.split(t):
        name, sep, value = part.partition("=")
        if sep:
            items.append((name, value))
    return _lower_keys(items)


def _params(
    form: str, params: dict[str, str], cfg: RuleConfig
) -> tuple[dict[str, Any], LookupQuery]:
    if "fphm" in params:
        fields = {ours: params[name] for name, ours in _CN_NAMES.items() if params.get(name)}
        cn_match: dict[str, str] = {
            k: fields[k]
            for k in ("amount", "total_amount", "issued_on", "check_code")
            if k in fields
        }
        return _vn_or_cn(f"cn-{form}", "cn", fields, cn_match, cfg)
    fields = {ours: params[name] for name, ours in _VN_NAMES.items() if params.get(name)}
    match: dict[str, str] = {
        k: fields.pop(k) for k in ("total_amount", "tax_amount", "issued_on") if k in fields
    }
    if "authority_code" in fields and not ({"seller_tax_id", "series", "number"} & set(fields)):
        code = fields["authority_code"].upper()
        if vn.AUTHORITY_CODE_RE.fullmatch(code) or vn.CASH_REGISTER_CODE_RE.fullmatch(code):
            payload = {"format": f"vn-{form}", "scheme": "vn", "authority_code": code}
            return _with_match(payload, LookupQuery("vn", None, code, MatchFields()), match)
    if not {"seller_tax_id", "series", "number"} <= set(fields):
        raise NotInvoice("no invoice key among the parameters")
    fields.pop("authority_code", None)
    _split_template(fields)
    return _vn_or_cn(f"vn-{form}", "vn", fields, match, cfg)


def _split_template(fields: dict[str, Any]) -> None:
    """`khhdon=1C22TAA` with no template: the portal's joined display form (§1.2)."""
    series = str(fields.get("series", ""))
    if "template" not in fields and len(series) == 7 and is_ascii_digits(series[0]):
        fields["template"], fields["series"] = series[0], series[1:]


def _vn_fields(t: str, cfg: RuleConfig) -> tuple[dict[str, Any], LookupQuery]:
    parts = [p.strip() for p in _FIELD_SPLIT.split(t)]
    if len(parts) < 3 or not _TAX_ID.fullmatch(parts[0]):
        raise NotInvoice("not an invoice QR")
    if len(parts[1]) == 7 and is_ascii_digits(parts[1][0]):
        fields = {"seller_tax_id": parts[0], "series": parts[1], "number": parts[2]}
        extra = parts[3:]
        _split_template(fields)
    elif len(parts) >= 4:
        fields = dict(
            zip(("seller_tax_id", "template", "series", "number"), parts[:4], strict=True)
        )
        extra = parts[4:]
    else:
        raise NotInvoice("not an invoice QR")
    match = {k: v for k, v in zip(("total_amount", "issued_on"), extra, strict=False) if v}
    return _vn_or_cn("vn-fields", "vn", fields, match, cfg)


def _ours(t: str, cfg: RuleConfig) -> tuple[dict[str, Any], LookupQuery]:
    parts = t.split("|")
    scheme = parts[1] if len(parts) > 1 else ""
    width = {"vn": 6, "cn": 4}.get(scheme)
    if width is None or len(parts) < width or len(parts) > width + 2:
        raise _Invalid(
            {"format": "ivqr1"},
            "an IVQR1 code must read IVQR1|vn|seller|template|"
            "series|number|total|date or IVQR1|cn|code|number|total|date",
            [],
        )
    names = (
        ["seller_tax_id", "template", "series", "number"] if scheme == "vn" else ["code", "number"]
    )
    fields = dict(zip(names, parts[2:width], strict=True))
    match = {k: v for k, v in zip(("total_amount", "issued_on"), parts[width:], strict=False) if v}
    return _vn_or_cn("ivqr1", scheme, fields, match, cfg)


def _vn_or_cn(
    form: str, scheme: str, fields: dict[str, Any], match: dict[str, str], cfg: RuleConfig
) -> tuple[dict[str, Any], LookupQuery]:
    payload: dict[str, Any] = {"format": form, "scheme": scheme, **fields}
    key: VnKey | CnKey | None
    if scheme == "vn":
        key, problems = vn_key(fields, cfg)
    else:
        key, problems = cn_key(
            {"invoice_code": fields.get("code"), "invoice_number": fields.get("number")}, cfg
        )
    if key is None:
        raise _Invalid(
            payload,
            "the QR names an invoice key that is not valid",
            [v.as_dict() for v in problems],
        )
    if scheme == "cn":  # shown under the key's own names, invoice_code / invoice_number
        payload.pop("code", None)
        payload.pop("number", None)
    payload.update(key.as_dict())
    return _with_match(payload, LookupQuery(scheme, key, None, MatchFields()), match)


def _with_match(
    payload: dict[str, Any], query: LookupQuery, match: dict[str, str]
) -> tuple[dict[str, Any], LookupQuery]:
    try:
        amounts = {
            k: parse_amount(match[k])
            for k in ("amount", "total_amount", "tax_amount")
            if k in match
        }
        issued = _date(match["issued_on"]) if "issued_on" in match else None
    except (AmountError, ValueError) as exc:
        raise _Invalid(payload, f"the QR carries a field that cannot be read: {exc}", []) from None
    check = match.get("check_code") or None
    if check is not None and not _CHECK.fullmatch(check):
        check = None  # only a 20-digit value is a check code (docs/cn-rules.md#31-fields)
    fields = MatchFields(
        total_amount=amounts.get("total_amount"),
        amount=amounts.get("amount"),
        issued_on=issued,
        check_code=check,
        tax_amount=amounts.get("tax_amount"),
    )
    payload.update({k: format_amount(v) for k, v in amounts.items()})
    if issued:
        payload["issued_on"] = issued.isoformat()
    if check:
        payload["check_code"] = check
    return payload, LookupQuery(query.scheme, query.key, query.authority_code, fields)


def _date(value: str) -> date:
    v = value.strip()
    if _DATE8.fullmatch(v):
        return datetime.strptime(v, "%Y%m%d").date()  # a calendar date: no zone
    return date.fromisoformat(v[:10])


def _cn_csv(t: str, cfg: RuleConfig, cn_amount: CnAmount) -> tuple[dict[str, Any], LookupQuery]:
    """docs/cn-rules.md#31-fields: version, type, code, number, amount, date, check code, tail."""
    f = [p.strip() for p in t.split(",")]
    if len(f) < 6 or not _TYPE_CODE.fullmatch(f[1]):
        raise NotInvoice("starts like a Chinese invoice QR but has too few fields")
    type_code, code, number, amount = f[1], f[2], f[3], f[4]
    rest = f[6:]
    check = rest[0] if rest and _CHECK.fullmatch(rest[0]) else None
    tail = next((x for x in rest[(1 if check else 0) :] if x), None)
    column = _amount_column(cn_amount, has_code=bool(code))
    payload_extra: dict[str, Any] = {
        "version": f[0],
        "type_code": type_code,
        "type_name": cn.TYPE_CODES.get(type_code),
        "type_known": type_code in cn.TYPE_CODES,
        "qr_amount": amount or None,
        "amount_compared_as": column if amount else None,
        "tail": tail,
    }
    if code:
        derived = cn.type_from_code(code)
        payload_extra["type_from_code"] = derived
        if cn.type_disagrees_with_code(type_code, derived):  # docs/cn-rules.md §3.2, §6.3
            found = cfg.violation(
                "cn.qr.type_mismatch",
                "type_code",
                f"QR type {type_code}, the code implies {derived}",
            )
            if found.severity == "error":  # else read on: the payload shows both types
                raise _Invalid(
                    {"format": "cn-qr", "scheme": "cn", **payload_extra},
                    "the QR's type differs from the type its invoice code implies",
                    [found.as_dict()],
                )
    match = {"issued_on": f[5]} if f[5] else {}
    if amount and column is not None:
        match[column] = amount
    if check:
        match["check_code"] = check
    payload, query = _vn_or_cn("cn-qr", "cn", {"code": code or None, "number": number}, match, cfg)
    return {**payload, **payload_extra}, query


def _amount_column(choice: CnAmount, *, has_code: bool) -> str | None:
    if choice is CnAmount.OFF:
        return None
    if choice is CnAmount.AUTO:
        return "amount" if has_code else "total_amount"
    return choice.value


def our_payload(key: VnKey | CnKey, total: Decimal | None, issued_on: date | None) -> str:
    """The text of our own QR codes (format 1 above)."""
    tail = [
        format_amount(total) if total is not None else "",
        issued_on.isoformat() if issued_on else "",
    ]
    if isinstance(key, VnKey):
        head = ["vn", key.seller_tax_id, key.template, key.series, str(key.number)]
    else:
        head = ["cn", key.code or "", key.number]
    return "|".join([OUR_PREFIX, *head, *tail])
