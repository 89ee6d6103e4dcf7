"""Field validation of one invoice or cancel notice from the JSON interchange format.

Pure functions: raw mapping in, model (or nothing) plus violations out. Chain rules that need
the store (duplicates, originals) live in `indexer.intake`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from indexer import cn, vn
from indexer.keys import CnKey, InvoiceKey, VnKey, key_from_fields, vn_key
from indexer.model import Amounts, Invoice, Kind, Relation, RelationKind
from indexer.money import AmountError, parse_amount
from indexer.rules import RuleConfig, Severity, Violation
from indexer.text import clean_text, text_problem

#: Local time of each scheme (neither country observes daylight saving time).
SCHEME_TZ = {"vn": timezone(timedelta(hours=7)), "cn": timezone(timedelta(hours=8))}
#: Decimal places allowed per scheme: VND amounts may carry fractions in XML, CNY is in fen.
_AMOUNT_PLACES = {"vn": 4, "cn": 2}
_TOTALS_TOLERANCE = {"vn": Decimal(1), "cn": Decimal("0.01")}
_MAX_TEXT = 400
#: `2022-05-15T09:30:00.123456+07:00` is 32 characters; longer is no date of ours.
_MAX_DATE_CHARS = 64
#: Issue years taken: far enough either way for any real invoice, and far from the ends of
#: `datetime`'s range, which a conversion to another zone would cross.
_MIN_YEAR, _MAX_YEAR = 1900, 9000


@dataclass(frozen=True, slots=True)
class CancelNotice:
    key: InvoiceKey
    notice_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """A 04/SS-HĐĐT notice that cancels nothing (vn-einvoice §6.5: `TCTBao` 2, 3 or 4 only):
    it changes no invoice, but its sender is checked like any other's (§8 step 1.5)."""

    notice_id: str
    reason: str | None = None


def is_fatal(violations: list[Violation]) -> bool:
    for violation in violations:  # noqa: SIM110 (twice as fast as any(); hot in intake)
        if violation.severity is Severity.ERROR:
            return True
    return False


def _kept(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity is not Severity.OFF]


def infer_scheme(raw: Mapping[str, Any]) -> str:
    scheme = raw.get("scheme")
    if isinstance(scheme, str) and scheme:
        return scheme.lower()
    return "cn" if "invoice_number" in raw else "vn"


def parse_issued_at(
    value: object, cfg: RuleConfig, now: datetime, out: list[Violation]
) -> datetime | None:
    if value is None or value == "":
        out.append(cfg.violation("invoice.field.required", "issued_at"))
        return None
    text = value.strip() if isinstance(value, str) and len(value) <= _MAX_DATE_CHARS else None
    if not text or not text.isascii() or text_problem(text) is not None:
        # other scripts' digits, NUL, lone surrogates: nothing `fromisoformat` should see
        shown = value if isinstance(value, str) else repr(value)
        out.append(cfg.violation("invoice.issued_at.invalid", "issued_at", shown))
        return None
    try:
        issued = datetime.fromisoformat(text)
    except ValueError:
        out.append(cfg.violation("invoice.issued_at.invalid", "issued_at", text))
        return None
    if issued.tzinfo is None or issued.utcoffset() is None:
        out.append(cfg.violation("invoice.issued_at.timezone", "issued_at", text))
        return None
    if not _MIN_YEAR <= issued.year <= _MAX_YEAR:
        # year 1 or 9999 in another zone is out of `datetime`'s range (OverflowError)
        out.append(cfg.violation("invoice.issued_at.invalid", "issued_at", text))
        return None
    if issued > now + cfg.future_tolerance:
        out.append(cfg.violation("invoice.issued_at.future", "issued_at", text))
    return issued


def _absent(raw: Mapping[str, Any], name: str) -> bool:
    return raw.get(name) in (None, "")


def _text(
    raw: Mapping[str, Any],
    name: str,
    cfg: RuleConfig,
    out: list[Violation],
    *,
    required: bool = False,
    max_len: int = _MAX_TEXT,
) -> str | None:
    """The field's text; None when absent (a violation if required) or invalid (a violation).
    Callers that add their own "missing" rule check `_absent` first."""
    value = raw.get(name)
    if value is None or value == "":
        if required:
            out.append(cfg.violation("invoice.field.required", name))
        return None
    if not isinstance(value, str) or len(value) > max_len:
        out.append(cfg.violation("invoice.field.invalid", name, f"a string of at most {max_len}"))
        return None
    text = clean_text(value, max_len=max_len)
    if text is None:  # whitespace only, NUL and other controls, a lone surrogate
        problem = text_problem(value) or "is blank"
        out.append(cfg.violation("invoice.field.invalid", name, f"the text {problem}"))
    return text


#: Unicode categories that print nothing: spaces, line and paragraph separators, format
#: characters (zero-width space U+200B, word joiner U+2060, BOM U+FEFF) and controls.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc"})


def _visible(text: str) -> bool:
    """Does `text` show anything? Python's `strip()` leaves U+200B and U+FEFF in place."""
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


def _clean(raw: Mapping[str, Any], name: str) -> str | None:
    """A text field already checked by `_text`: stripped, or None when absent or empty."""
    value = raw.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _amounts(
    raw: Mapping[str, Any], scheme: str, cfg: RuleConfig, out: list[Violation]
) -> Amounts | None:
    values: dict[str, Decimal] = {}
    for name in ("amount_before_tax", "tax_amount", "total_amount"):
        if raw.get(name) in (None, ""):
            out.append(cfg.violation("invoice.field.required", name))
            continue
        try:
            values[name] = parse_amount(raw[name], max_places=_AMOUNT_PLACES[scheme])
        except AmountError as exc:
            code = (
                "invoice.amount.precision" if exc.kind == "precision" else "invoice.amount.invalid"
            )
            out.append(cfg.violation(code, name, str(exc)))
    if len(values) < 3:
        return None
    amounts = Amounts(values["amount_before_tax"], values["tax_amount"], values["total_amount"])
    if abs(amounts.total - amounts.before_tax - amounts.tax) > _TOTALS_TOLERANCE[scheme]:
        out.append(
            cfg.violation(
                "invoice.totals.inconsistent",
                "total_amount",
                f"{amounts.before_tax} + {amounts.tax} != {amounts.total}",
            )
        )
    return amounts


def _vn_checks(
    raw: Mapping[str, Any],
    key: VnKey,
    issued: datetime | None,
    cfg: RuleConfig,
    out: list[Violation],
) -> str | None:
    series = vn.parse_series(key.series)
    assert series is not None  # key validation guarantees the shape
    local = issued.astimezone(SCHEME_TZ["vn"]) if issued else None
    if local and series.year != local.year % 100:
        out.append(
            cfg.violation(
                "vn.series.year_mismatch",
                "series",
                f"series year {series.year:02d}, issued {local.year}",
            )
        )
    if series.kind in vn.CODED_KINDS and not series.with_code:
        out.append(cfg.violation("vn.series.kind_needs_code", "series", key.series))
    if (key.template == vn.DELIVERY_TEMPLATE) != (series.kind in vn.DELIVERY_KINDS):
        out.append(
            cfg.violation(
                "vn.series.template_mismatch", "series", f"template {key.template}, {key.series}"
            )
        )
    buyer = _text(raw, "buyer_tax_id", cfg, out, max_len=14)
    if buyer and not vn.tax_id_valid(buyer):
        out.append(cfg.violation("vn.tax_id.invalid", "buyer_tax_id", buyer))
    code = _text(raw, "authority_code", cfg, out, max_len=34)
    if code is None:
        if series.with_code and _absent(raw, "authority_code"):
            out.append(cfg.violation("vn.authority_code.required", "authority_code"))
        return None
    code = code.upper()
    if not series.with_code:
        out.append(cfg.violation("vn.authority_code.unexpected", "authority_code", code))
    register = vn.CASH_REGISTER_CODE_RE.fullmatch(code)
    if series.kind == "M" and series.with_code and register is None:
        out.append(cfg.violation("vn.authority_code.cash_register_form", "authority_code", code))
    elif register is None and not vn.AUTHORITY_CODE_RE.fullmatch(code):
        out.append(cfg.violation("vn.authority_code.invalid", "authority_code", code))
    elif register is not None and series.kind != "M":
        out.append(cfg.violation("vn.authority_code.cash_register_series", "authority_code", code))
    if register and local and int(register["yy"]) != local.year % 100:
        out.append(cfg.violation("vn.authority_code.cash_register_year", "authority_code", code))
    return code


def _cn_checks(
    raw: Mapping[str, Any],
    key: CnKey,
    issued: datetime | None,
    cfg: RuleConfig,
    out: list[Violation],
) -> tuple[str | None, str | None]:
    declared = _text(raw, "type_code", cfg, out, max_len=2)
    if declared is not None and declared not in cn.TYPE_CODES:
        out.append(cfg.violation("cn.type_code.unknown", "type_code", declared))
        declared = None
    if key.code is None:
        derived: str | None = cn.type_from_number20(key.number)
        local = issued.astimezone(SCHEME_TZ["cn"]) if issued else None
        if local and int(key.number[:2]) != local.year % 100:
            out.append(cfg.violation("cn.number.year_mismatch", "invoice_number", key.number))
    else:
        derived = cn.type_from_code(key.code)
        if derived is None and (declared is None or cn.outside_vat_layouts(key.code)):
            out.append(cfg.violation("cn.code.unsupported_type", "invoice_code", key.code))
            declared = None
        elif derived is None:
            out.append(cfg.violation("cn.code.type_underived", "invoice_code", key.code))
    if declared and derived and not cn.same_type(declared, derived) and key.code is not None:
        out.append(
            cfg.violation(
                "cn.type_code.mismatch", "type_code", f"declared {declared}, code implies {derived}"
            )
        )
    check = _text(raw, "check_code", cfg, out, max_len=20)
    if check is not None and not cn.CHECK_CODE_RE.fullmatch(check):
        out.append(cfg.violation("cn.check_code.invalid", "check_code", check))
    family = sorted(cn.CHECK_CODE_TYPES.intersection((declared, derived)))
    if family and _absent(raw, "check_code"):
        out.append(cfg.violation("cn.check_code.required", "check_code", f"type {family[0]}"))
    for name in ("seller_tax_id", "buyer_tax_id"):
        tax_id = _text(raw, name, cfg, out, max_len=20)
        if tax_id and not cn.TAX_ID_RE.fullmatch(tax_id):
            out.append(cfg.violation("cn.tax_id.invalid", name, tax_id))
    return declared or derived, check


#: The kinds of related invoice (`LHDCLQuan`, vn-einvoice §5.6) that are not Decree 123
#: e-invoices. This index never holds them, so a correction of one keeps the original's key
#: as written and links to it one way, marked external (`external_relation`).
EXTERNAL_KINDS = {
    "2": "an e-invoice with an authentication code under Decisions 1209/2015 and 2660/2016",
    "3": "an invoice under Decree 51/2010 or 04/2014",
    "4": "a printed invoice under Decree 123",
}
_RELATED_KINDS = frozenset({"1", *EXTERNAL_KINDS})
#: How the relation to an external original starts its `reason`, which says what it is.
EXTERNAL_PREFIX = "external:"


def external_relation(kind: Kind, related_kind: str, key: InvoiceKey, at: datetime) -> Relation:
    """The link of a replacement or adjustment to an original this index does not hold."""
    forward = RelationKind.REPLACES if kind is Kind.REPLACEMENT else RelationKind.ADJUSTS
    reason = (
        f"{EXTERNAL_PREFIX} the original is {EXTERNAL_KINDS[related_kind]} "
        f"(LHDCLQuan {related_kind}), not held in this index"
    )
    return Relation(forward, key=key, reason=reason, at=at, external=True)


def is_external(relation: Relation) -> bool:
    return relation.external


def external_original(invoice: Invoice) -> bool:
    """Whether the invoice corrects an original this index never holds (its link is external)."""
    return any(r.external and r.key == invoice.original for r in invoice.relations)


def _related_kind(
    original: Mapping[str, Any], scheme: str, cfg: RuleConfig, out: list[Violation]
) -> str | None:
    """`original.related_kind` (LHDCLQuan 1-4; 1, a Decree 123 e-invoice, when absent);
    None with a violation when it is not one of them or not a Vietnamese invoice's."""
    value = original.get("related_kind")
    if value is None or value == "":
        return "1"
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if scheme != "vn" or text.strip() not in _RELATED_KINDS:
        detail = "1, 2, 3 or 4 (LHDCLQuan), on a Vietnamese invoice"
        out.append(cfg.violation("invoice.field.invalid", "original.related_kind", detail))
        return None
    return text.strip()


def _original(
    raw: Mapping[str, Any], scheme: str, kind: Kind | None, cfg: RuleConfig, out: list[Violation]
) -> tuple[InvoiceKey | None, str | None]:
    """The original's key and, when this index cannot hold it, its kind (`EXTERNAL_KINDS`)."""
    original = raw.get("original")
    if kind in (Kind.REPLACEMENT, Kind.ADJUSTMENT, Kind.RED_LETTER):
        if not isinstance(original, Mapping):
            out.append(cfg.violation("invoice.original.required", "original"))
            return None, None
        related = _related_kind(original, scheme, cfg, out)
        external = related in EXTERNAL_KINDS
        key: InvoiceKey | None
        problems: list[Violation]
        if external:
            key, problems = vn_key(original, cfg, prefix="original.", external=True)
        else:
            key, problems = key_from_fields(original, scheme, cfg, prefix="original.")
        out.extend(problems)
        return key, related if external else None
    if original is not None:
        out.append(cfg.violation("invoice.original.unexpected", "original"))
    return None, None


def validate_invoice(
    raw: object, cfg: RuleConfig, *, package_id: str, now: datetime
) -> tuple[Invoice | None, list[Violation]]:
    """Check one JSON invoice; returns the model only when no error-severity rule fired."""
    if not isinstance(raw, Mapping):
        return None, [cfg.violation("invoice.field.invalid", None, "an invoice is a JSON object")]
    out: list[Violation] = []
    scheme = infer_scheme(raw)
    key, problems = key_from_fields(raw, scheme, cfg)
    out.extend(problems)
    if scheme not in SCHEME_TZ:
        return None, _kept(out)
    issued = parse_issued_at(raw.get("issued_at"), cfg, now, out)
    currency_raw = _text(raw, "currency", cfg, out, required=True, max_len=4)
    currency = vn.normalise_currency(currency_raw) if currency_raw else None
    if currency is not None and not (len(currency) == 3 and currency.isalpha()):
        out.append(cfg.violation("invoice.currency.invalid", "currency", currency_raw))
    amounts = _amounts(raw, scheme, cfg, out)
    kind = _kind(raw, scheme, cfg, out)
    original, external = _original(raw, scheme, kind, cfg, out)
    red_form = _red_form(raw, kind, cfg, out)
    seller_name = _text(raw, "seller_name", cfg, out)
    buyer_name = _text(raw, "buyer_name", cfg, out)
    authority_code = type_code = check_code = None
    if isinstance(key, VnKey):
        authority_code = _vn_checks(raw, key, issued, cfg, out)
    elif isinstance(key, CnKey):
        type_code, check_code = _cn_checks(raw, key, issued, cfg, out)
    out = _kept(out)
    if is_fatal(out) or key is None or issued is None or amounts is None or kind is None:
        return None, out
    assert currency is not None
    seller_tax_id = key.seller_tax_id if isinstance(key, VnKey) else _clean(raw, "seller_tax_id")
    buyer_tax_id = _clean(raw, "buyer_tax_id")
    invoice = Invoice(
        key=key,
        issued_at=issued,
        currency=currency,
        amounts=amounts,
        package_id=package_id,
        kind=kind,
        original=original,
        seller_tax_id=seller_tax_id,
        seller_name=seller_name,
        buyer_tax_id=vn.normalise_tax_id(buyer_tax_id) if buyer_tax_id else None,
        buyer_name=buyer_name,
        authority_code=authority_code,
        type_code=type_code,
        check_code=check_code,
        relations=(external_relation(kind, external, original, now),)
        if external and original
        else (),
    )
    if kind is Kind.RED_LETTER and original is not None:
        reverses = Relation(
            RelationKind.REVERSES,
            key=original,
            notice_id=red_form,
            at=now,
            amount=abs(amounts.total),
        )
        invoice = replace(invoice, relations=(reverses,))
    return invoice, out


def _kind(
    raw: Mapping[str, Any], scheme: str, cfg: RuleConfig, out: list[Violation]
) -> Kind | None:
    """The invoice's kind; `red_letter` (红字发票, cn-invoice §4.4) is Chinese only."""
    try:
        kind = Kind(raw.get("kind") or "original")
    except ValueError:
        out.append(cfg.violation("invoice.kind.invalid", "kind", str(raw.get("kind"))))
        return None
    if kind is Kind.RED_LETTER and scheme != "cn":
        out.append(cfg.violation("invoice.kind.invalid", "kind", "red_letter is Chinese only"))
        return None
    return kind


def _red_form(
    raw: Mapping[str, Any], kind: Kind | None, cfg: RuleConfig, out: list[Violation]
) -> str | None:
    """The 红字信息表 / 红字确认单 number a red-letter invoice was issued against."""
    value = raw.get("red_form_number")
    blank = isinstance(value, str) and not _visible(value)  # spaces, zero-width characters
    if kind is Kind.RED_LETTER and (_absent(raw, "red_form_number") or blank):
        out.append(cfg.violation("cn.red_letter.form_required", "red_form_number"))
        return None
    form = _text(raw, "red_form_number", cfg, out, max_len=64)
    if kind is not Kind.RED_LETTER and kind is not None and not _absent(raw, "red_form_number"):
        out.append(cfg.violation("cn.red_letter.form_unexpected", "red_form_number", form))
    return form


def _void_checks(key: CnKey, cfg: RuleConfig, out: list[Violation]) -> None:
    """Only paper invoices are voided (作废, cn-invoice §4.4); electronic ones are reversed."""
    if key.code is None:
        out.append(cfg.violation("cn.void.fully_digitalised", "key", key.number))
        return
    kind = cn.type_from_code(key.code)
    if kind in cn.ELECTRONIC_TYPES:
        out.append(cfg.violation("cn.void.electronic", "key", f"type {kind}"))


def validate_notice(
    raw: object, cfg: RuleConfig
) -> tuple[CancelNotice | Explanation | None, list[Violation]]:
    """Check one notice: a cancellation (`{"kind": "cancel", "key": {...}, "reason",
    "notice_id"}`) or an explanation (`{"kind": "explain", "notice_id", "reason"?}`)."""
    if not isinstance(raw, Mapping):
        return None, [cfg.violation("invoice.field.invalid", None, "a notice is a JSON object")]
    out: list[Violation] = []
    if raw.get("kind") == "explain":
        notice_id = _text(raw, "notice_id", cfg, out, required=True, max_len=64)
        reason = _text(raw, "reason", cfg, out, max_len=255)
        out = _kept(out)
        if is_fatal(out) or notice_id is None:
            return None, out
        return Explanation(notice_id, reason), out
    if raw.get("kind") != "cancel":
        out.append(cfg.violation("notice.kind.invalid", "kind", str(raw.get("kind"))))
    value = raw.get("reason")
    if _absent(raw, "reason") or (isinstance(value, str) and not _visible(value)):
        reason = None  # a reason of spaces or invisible characters gives no reason
        out.append(cfg.violation("notice.reason.required", "reason", "blank" if value else None))
    else:
        reason = _text(raw, "reason", cfg, out, max_len=255)
    notice_id = _text(raw, "notice_id", cfg, out, required=True, max_len=64)
    key_raw = raw.get("key")
    key: InvoiceKey | None = None
    if isinstance(key_raw, Mapping):
        key, problems = key_from_fields(key_raw, infer_scheme(key_raw), cfg, prefix="key.")
        out.extend(problems)
    else:
        out.append(cfg.violation("invoice.field.required", "key"))
    if isinstance(key, CnKey):
        _void_checks(key, cfg, out)
    out = _kept(out)
    if is_fatal(out) or key is None or reason is None or notice_id is None:
        return None, out
    return CancelNotice(key=key, notice_id=notice_id, reason=reason), out
