"""Pure-function tests of invoice / notice validation and of the JSON package envelope.

Every input is a valid factory-built invoice with one thing broken, so each case names the
exact rule it must trip (code, field, severity) and, for an error, that no model comes back.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from indexer.keys import CnKey, VnKey
from indexer.model import Kind
from indexer.package import PackageError, package_from_json, parse_json_package
from indexer.rules import RULES, RuleConfig, Severity, Violation
from indexer.validate import CancelNotice, validate_invoice, validate_notice
from tests.factories import (
    BUYER,
    CN_CODE_E,
    CN_CODE_SPECIAL,
    PROVIDER,
    SELLER,
    SELLER_2,
    authority_code,
    cancel,
    cn_digital,
    cn_invoice,
    package,
    vn_invoice,
    vn_key,
)

CFG = RuleConfig()
NOW = datetime(2026, 11, 23, tzinfo=UTC)
E, W = Severity.ERROR, Severity.WARNING
ICT = timezone(timedelta(hours=7))
PILOT_CODE = "144032409110"  # 12-digit code seen in public code; no type can be derived from it

Triple = tuple[str, str | None, Severity]


def check(raw: object, cfg: RuleConfig = CFG, now: datetime = NOW) -> tuple[Any, list[Triple]]:
    invoice, out = validate_invoice(raw, cfg, package_id="PKG-1", now=now)
    return invoice, triples(out)


def triples(violations: list[Violation]) -> list[Triple]:
    return [(v.code, v.field, v.severity) for v in violations]


def with_(raw: dict[str, Any], **over: Any) -> dict[str, Any]:
    """`raw` with fields replaced; a None value removes the field (like the factories)."""
    out = {**raw, **over}
    return {k: v for k, v in out.items() if v is not None}


def replacement(number: int = 2, **original: Any) -> dict[str, Any]:
    return vn_invoice(number, kind="replacement", original=vn_key(1, **original))


# --- fatal errors: exactly one violation, no model ----------------------------------------------

ERROR_CASES: list[tuple[str, object, str, str | None]] = [
    # (id, raw invoice, rule code, field)
    ("not an object", ["not", "an", "invoice"], "invoice.field.invalid", None),
    ("scheme unknown", vn_invoice(scheme="us"), "invoice.scheme.unknown", "scheme"),
    ("seller missing", vn_invoice(seller_tax_id=None), "invoice.field.required", "seller_tax_id"),
    (
        "MST check digit",
        vn_invoice(seller_tax_id="0100233480"),
        "vn.tax_id.invalid",
        "seller_tax_id",
    ),
    (
        "MST zero sequence",
        vn_invoice(seller_tax_id="0100000000"),
        "vn.tax_id.invalid",
        "seller_tax_id",
    ),
    (
        "branch suffix 000",
        vn_invoice(seller_tax_id="0314409058-000"),
        "vn.tax_id.invalid",
        "seller_tax_id",
    ),
    (
        "buyer MST check digit",
        vn_invoice(buyer_tax_id="0100233480"),
        "vn.tax_id.invalid",
        "buyer_tax_id",
    ),
    ("template 0", vn_invoice(template="0"), "vn.template.invalid", "template"),
    ("template A", vn_invoice(template="A"), "vn.template.invalid", "template"),
    ("series bad letter", vn_invoice(series="C22ZAA"), "vn.series.invalid", "series"),
    ("series bad code type", vn_invoice(series="A22TAA"), "vn.series.invalid", "series"),
    ("series too short", vn_invoice(series="C22TA"), "vn.series.invalid", "series"),
    ("series year", vn_invoice(series="C23TAA"), "vn.series.year_mismatch", "series"),
    (
        "series year before 21",  # spec §1.2: positions 2-3 run `21`...`99`
        vn_invoice(series="C20TAA", issued_at="2020-05-15T09:30:00+07:00"),
        "vn.series.year_out_of_range",
        "series",
    ),
    (
        "cash-register series without code",  # spec §2.2: "Cash-register invoices (series C..M..)"
        vn_invoice(series="K22MAB", authority_code=None),
        "vn.series.kind_needs_code",
        "series",
    ),
    (
        "per-occurrence series without code",  # spec §1.2 L: issued by the tax authority
        vn_invoice(series="K22LAB", authority_code=None),
        "vn.series.kind_needs_code",
        "series",
    ),
    (
        "cash-register code on a T series",  # spec §2.1: a coded invoice's MCCQT is 34 hex
        vn_invoice(authority_code="M1-22-ABCDE-00000000001"),
        "vn.authority_code.cash_register_series",
        "authority_code",
    ),
    (
        "template 6 with letter T",  # spec §1.1: template 6 holds the delivery notes
        vn_invoice(template="6"),
        "vn.series.template_mismatch",
        "series",
    ),
    (
        "template 1 with letter N",  # spec §1.2: N = e-internal transfer delivery note
        vn_invoice(series="C22NAA"),
        "vn.series.template_mismatch",
        "series",
    ),
    (
        "template 1 with letter B",  # spec §1.2: B = e-agent-consignment delivery note
        vn_invoice(series="K22BAA", authority_code=None),
        "vn.series.template_mismatch",
        "series",
    ),
    (
        "number of 9 characters",  # spec §1.3: max 8 digits, zero-padding included
        with_(vn_invoice(1, series="K22TAA", authority_code=None), number="000000001"),
        "vn.number.out_of_range",
        "number",
    ),
    (
        "personal id of zeros",  # spec §3: a 12-digit personal id, no province 000
        vn_invoice(buyer_tax_id="000000000000"),
        "vn.tax_id.invalid",
        "buyer_tax_id",
    ),
    ("number 0", with_(vn_invoice(1), number=0), "vn.number.out_of_range", "number"),
    (
        "number 100000000",
        with_(vn_invoice(1), number=100_000_000),
        "vn.number.out_of_range",
        "number",
    ),
    ("number not digits", with_(vn_invoice(1), number="12a"), "invoice.field.invalid", "number"),
    (
        "C series without code",
        vn_invoice(authority_code=None),
        "vn.authority_code.required",
        "authority_code",
    ),
    (
        "code too short",
        vn_invoice(authority_code="00ABC"),
        "vn.authority_code.invalid",
        "authority_code",
    ),
    (
        "code not hex",
        vn_invoice(authority_code="G" * 34),
        "vn.authority_code.invalid",
        "authority_code",
    ),
    (
        "cash register with 34-hex code",
        vn_invoice(series="C22MAA"),
        "vn.authority_code.cash_register_form",
        "authority_code",
    ),
    ("issued_at missing", vn_invoice(issued_at=None), "invoice.field.required", "issued_at"),
    (
        "issued_at not ISO",
        vn_invoice(issued_at="15/05/2022 09:30"),
        "invoice.issued_at.invalid",
        "issued_at",
    ),
    (
        "issued_at naive",
        vn_invoice(issued_at="2022-05-15T09:30:00"),
        "invoice.issued_at.timezone",
        "issued_at",
    ),
    ("currency missing", vn_invoice(currency=None), "invoice.field.required", "currency"),
    ("currency not ISO", vn_invoice(currency="US$"), "invoice.currency.invalid", "currency"),
    ("amount missing", vn_invoice(total_amount=None), "invoice.field.required", "total_amount"),
    (
        "amount float",
        vn_invoice(amount_before_tax=1000000.0),
        "invoice.amount.invalid",
        "amount_before_tax",
    ),
    ("amount not a number", vn_invoice(tax_amount="100k"), "invoice.amount.invalid", "tax_amount"),
    ("amount NaN", vn_invoice(tax_amount="NaN"), "invoice.amount.invalid", "tax_amount"),
    (
        "VN amount 5 places",
        vn_invoice(tax_amount="100000.00001"),
        "invoice.amount.precision",
        "tax_amount",
    ),
    (
        "CN amount 3 places",
        cn_invoice(amount_before_tax="205.301"),
        "invoice.amount.precision",
        "amount_before_tax",
    ),
    ("kind invalid", vn_invoice(kind="credit_note"), "invoice.kind.invalid", "kind"),
    (
        "replacement without original",
        vn_invoice(2, kind="replacement"),
        "invoice.original.required",
        "original",
    ),
    (
        "adjustment without original",
        vn_invoice(2, kind="adjustment"),
        "invoice.original.required",
        "original",
    ),
    (
        "original on an original",
        vn_invoice(2, original=vn_key(1)),
        "invoice.original.unexpected",
        "original",
    ),
    (
        "original number missing",
        vn_invoice(
            2,
            kind="replacement",
            original={"seller_tax_id": SELLER, "template": "1", "series": "C22TAA"},
        ),
        "invoice.field.required",
        "original.number",
    ),
    (
        "original MST invalid",
        replacement(seller_tax_id="0100233480"),
        "vn.tax_id.invalid",
        "original.seller_tax_id",
    ),
    (
        "legacy original key with a colon",
        vn_invoice(
            2,
            kind="replacement",
            original={**vn_key(1, template="01GTKT0/001", series="AA:21E"), "related_kind": "3"},
        ),
        "vn.original.external_key",
        "original.series",
    ),
    (
        "original number 0",
        vn_invoice(2, kind="replacement", original=vn_key(0)),
        "vn.number.out_of_range",
        "original.number",
    ),
    (
        "seller name too long",
        vn_invoice(seller_name="x" * 401),
        "invoice.field.invalid",
        "seller_name",
    ),
    ("CN code invalid", cn_invoice(invoice_code="12345"), "cn.code.invalid", "invoice_code"),
    (
        "CN 8-digit number without code",
        cn_invoice(invoice_code=None),
        "cn.number.invalid",
        "invoice_number",
    ),
    (
        "CN 20-digit number with code",
        cn_invoice("23442000000014209621"),
        "cn.number.invalid",
        "invoice_number",
    ),
    (
        "CN number missing",
        cn_invoice(invoice_number=None),
        "invoice.field.required",
        "invoice_number",
    ),
    ("CN type code unknown", cn_invoice(type_code="99"), "cn.type_code.unknown", "type_code"),
    (
        "CN e-invoice without check code",  # cn-invoice §4.1: 10 is checked by the check code
        cn_invoice(check_code=None),
        "cn.check_code.required",
        "check_code",
    ),
    (
        "CN red-letter invoice without its 红字信息表 number",  # cn-invoice §4.4
        cn_invoice(
            kind="red_letter", original={"invoice_code": CN_CODE_E, "invoice_number": "00000001"}
        ),
        "cn.red_letter.form_required",
        "red_form_number",
    ),
    (
        "CN blue invoice with a 红字信息表 number",
        cn_invoice(red_form_number="4403122303230001"),
        "cn.red_letter.form_unexpected",
        "red_form_number",
    ),
    (
        "red_letter on a Vietnamese invoice",  # vn-einvoice §5.6: replaced or adjusted only
        vn_invoice(kind="red_letter"),
        "invoice.kind.invalid",
        "kind",
    ),
    (
        "CN paper ordinary invoice without check code",  # §1.1: digit 8 = 3 -> 04
        cn_invoice(invoice_code="1100163320", type_code="04", check_code=None),
        "cn.check_code.required",
        "check_code",
    ),
    (
        "CN roll invoice without check code",  # §1.2: suffix 06 -> 11
        cn_invoice(invoice_code="044031900106", type_code=None, check_code=None),
        "cn.check_code.required",
        "check_code",
    ),
    (
        "CN toll invoice without check code",  # §1.2: suffix 12 -> 14
        cn_invoice(invoice_code="044031900112", type_code="14", check_code=None),
        "cn.check_code.required",
        "check_code",
    ),
    (
        "CN local-tax legacy code, declared 03",  # §1.4: digit 1 = 2 is local tax
        cn_invoice(invoice_code="244031920011", type_code="03"),
        "cn.code.unsupported_type",
        "invoice_code",
    ),
    (
        "CN code of no layout, declared 10",  # §1.4: digit 1 is 1 or 2 in the legacy layout
        cn_invoice(invoice_code="344031900111", type_code="10"),
        "cn.code.unsupported_type",
        "invoice_code",
    ),
    (
        "CN underived code, no type",
        cn_invoice(invoice_code=PILOT_CODE, type_code=None),
        "cn.code.unsupported_type",
        "invoice_code",
    ),
    (
        "CN check code 19 digits",
        cn_invoice(check_code="1" * 19),
        "cn.check_code.invalid",
        "check_code",
    ),
    (
        "CN check code letters",
        cn_invoice(check_code="4975326464297738316X"),
        "cn.check_code.invalid",
        "check_code",
    ),
    ("CN seller tax id", cn_invoice(seller_tax_id="91-1101"), "cn.tax_id.invalid", "seller_tax_id"),
    (
        "CN buyer tax id lower case",
        cn_invoice(buyer_tax_id="91310115ma1k3xyz2p"),
        "cn.tax_id.invalid",
        "buyer_tax_id",
    ),
]


@pytest.mark.parametrize(
    ("raw", "code", "field"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_error_rejects_with_exact_rule(raw: object, code: str, field: str | None) -> None:
    invoice, found = check(raw)
    assert found == [(code, field, E)]
    assert invoice is None


# --- warnings: the model comes back, with exactly this warning ------------------------------------

WARNING_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("series letter F", vn_invoice(series="C22FAA"), "vn.series.letter_f", "series"),
    (
        "K series with code",
        vn_invoice(series="K22TAA"),
        "vn.authority_code.unexpected",
        "authority_code",
    ),
    (
        "cash register code year",
        vn_invoice(series="C22MAA", authority_code="M1-23-ABCDE-00000000001"),
        "vn.authority_code.cash_register_year",
        "authority_code",
    ),
    (
        "VN totals",
        vn_invoice(total_amount="1100002"),
        "invoice.totals.inconsistent",
        "total_amount",
    ),
    ("CN totals", cn_invoice(total_amount="217.64"), "invoice.totals.inconsistent", "total_amount"),
    ("CN type mismatch", cn_invoice(type_code="01"), "cn.type_code.mismatch", "type_code"),
    (
        "CN underived code, declared type",
        cn_invoice(invoice_code=PILOT_CODE, type_code="10"),
        "cn.code.type_underived",
        "invoice_code",
    ),
    (
        "CN 20-digit number year",
        with_(cn_digital(), issued_at="2024-03-01T10:00:00+08:00"),
        "cn.number.year_mismatch",
        "invoice_number",
    ),
]


@pytest.mark.parametrize(
    ("raw", "code", "field"), [c[1:] for c in WARNING_CASES], ids=[c[0] for c in WARNING_CASES]
)
def test_warning_accepts_and_reports(raw: dict[str, Any], code: str, field: str) -> None:
    invoice, found = check(raw)
    assert found == [(code, field, W)]
    assert invoice is not None


@pytest.mark.parametrize(
    "raw",
    [
        vn_invoice(template="6", series="C22NAA"),
        vn_invoice(template="6", series="K22BAA", authority_code=None),
        vn_invoice(series="C21TAA", issued_at="2021-12-01T09:30:00+07:00"),
        vn_invoice(series="C22MAA", authority_code="M1-22-ABCDE-00000000001"),
        vn_invoice(series="C22LAA"),
        vn_invoice(buyer_tax_id="001099012345"),
    ],
    ids=["6 N", "6 B", "year 21", "M coded", "L coded", "personal id"],
)
def test_possible_series_and_ids_pass(raw: dict[str, Any]) -> None:
    invoice, found = check(raw)
    assert (invoice is not None, found) == (True, [])


@pytest.mark.parametrize(
    ("raw", "type_code"),
    [
        (cn_invoice(invoice_code="4300171130", type_code="01", check_code=None), "01"),
        (cn_invoice(invoice_code="144031920011", type_code=None, check_code=None), "03"),
        (cn_digital(), "32"),
    ],
    ids=["special, no check code", "state-tax motor vehicle", "数电, no check code"],
)
def test_cn_invoices_outside_the_ordinary_family_need_no_check_code(
    raw: dict[str, Any], type_code: str
) -> None:
    invoice, found = check(raw)
    assert (found, invoice.type_code) == ([], type_code)


def test_valid_vn_invoice_builds_the_model() -> None:
    invoice, found = check(vn_invoice(7))
    assert found == []
    assert invoice.key == VnKey(SELLER, "1", "C22TAA", 7)
    assert invoice.doc_id == "vn:0100109106:1:C22TAA:7"
    assert invoice.issued_at == datetime(2022, 5, 15, 9, 30, tzinfo=ICT)
    assert invoice.amounts.before_tax == Decimal(1_000_000)
    assert invoice.amounts.total == Decimal(1_100_000)
    assert invoice.kind is Kind.ORIGINAL
    assert invoice.original is None
    assert invoice.authority_code == authority_code(7)
    assert invoice.seller_tax_id == SELLER
    assert invoice.buyer_tax_id == BUYER
    assert invoice.package_id == "PKG-1"


def test_valid_cn_invoices_build_the_model() -> None:
    invoice, found = check(cn_invoice())
    assert found == []
    assert invoice.key == CnKey(CN_CODE_E, "81532753")
    assert (invoice.type_code, invoice.check_code) == ("10", "49753264642977383169")
    assert invoice.amounts.total == Decimal("217.62")
    digital, found = check(cn_digital())
    assert found == []
    assert digital.key == CnKey(None, "23442000000014209621")
    assert digital.doc_id == "cn:23442000000014209621"
    assert digital.type_code == "32"


# --- Vietnamese identity details ------------------------------------------------------------------


def test_twelve_digit_personal_id_is_accepted_as_seller() -> None:
    invoice, found = check(vn_invoice(seller_tax_id="001099012345"))
    assert found == []
    assert invoice.key.seller_tax_id == "001099012345"


@pytest.mark.parametrize("seller", ["0314409058002", "0314409058-002", " 0314409058-002 "])
def test_branch_mst_is_normalised_with_dash(seller: str) -> None:
    invoice, found = check(vn_invoice(seller_tax_id=seller, buyer_tax_id="0314409058002"))
    assert found == []
    assert invoice.key.seller_tax_id == "0314409058-002"
    assert invoice.seller_tax_id == "0314409058-002"
    assert invoice.buyer_tax_id == "0314409058-002"
    assert invoice.doc_id == "vn:0314409058-002:1:C22TAA:1"


@pytest.mark.parametrize("series", ["1C22TAA", "c22taa"])
def test_series_is_normalised(series: str) -> None:
    invoice, found = check(vn_invoice(series=series))
    assert found == []
    assert invoice.key.series == "C22TAA"


@pytest.mark.parametrize(
    ("issued_at", "series", "found"),
    [
        # 23:30 at UTC-1 on New Year's Eve is already 07:30 on 1 January 2023 in Vietnam.
        ("2022-12-31T23:30:00-01:00", "C23TAA", []),
        ("2022-12-31T23:30:00-01:00", "C22TAA", [("vn.series.year_mismatch", "series", E)]),
        # 2022-12-31T17:30Z is 00:30 on 1 January 2023 in Vietnam.
        ("2022-12-31T17:30:00+00:00", "C23TAA", []),
        ("2022-12-31T16:59:59+00:00", "C22TAA", []),
        ("2022-12-31T16:59:59+00:00", "C23TAA", [("vn.series.year_mismatch", "series", E)]),
    ],
)
def test_series_year_is_the_vietnamese_local_year(
    issued_at: str, series: str, found: list[Triple]
) -> None:
    invoice, got = check(vn_invoice(series=series, issued_at=issued_at))
    assert got == found
    assert (invoice is None) == bool(found)


def test_series_letter_f_can_be_made_an_error() -> None:
    cfg = RuleConfig(severity={"vn.series.letter_f": Severity.ERROR})
    invoice, found = check(vn_invoice(series="C22FAA"), cfg)
    assert found == [("vn.series.letter_f", "series", E)]
    assert invoice is None


def test_cash_register_code_of_the_issue_year_is_accepted() -> None:
    invoice, found = check(vn_invoice(series="C22MAA", authority_code="m1-22-abcde-00000000001"))
    assert found == []
    assert invoice.authority_code == "M1-22-ABCDE-00000000001"


def test_cash_register_year_rule_switched_off_leaves_no_trace() -> None:
    cfg = RuleConfig(severity={"vn.authority_code.cash_register_year": Severity.OFF})
    invoice, found = check(
        vn_invoice(series="C22MAA", authority_code="M1-23-ABCDE-00000000001"), cfg
    )
    assert found == []
    assert invoice is not None
    assert invoice.authority_code == "M1-23-ABCDE-00000000001"


def test_authority_code_is_upper_cased() -> None:
    invoice, found = check(vn_invoice(1, authority_code=authority_code(1).lower()))
    assert found == []
    assert invoice.authority_code == authority_code(1)


def test_k_series_without_code_is_accepted() -> None:
    invoice, found = check(vn_invoice(series="K22TAA", authority_code=None))
    assert found == []
    assert invoice.authority_code is None


@pytest.mark.parametrize("currency", ["đ", "VNĐ", "vnd"])
def test_vietnamese_currency_spellings_become_vnd(currency: str) -> None:
    invoice, found = check(vn_invoice(currency=currency))
    assert found == []
    assert invoice.currency == "VND"


def test_replacement_names_its_normalised_original() -> None:
    invoice, found = check(
        vn_invoice(
            2,
            kind="replacement",
            original=vn_key(1, seller_tax_id="0314409058002", series="c22taa"),
        )
    )
    assert found == []
    assert invoice.kind is Kind.REPLACEMENT
    assert invoice.original == VnKey("0314409058-002", "1", "C22TAA", 1)


# --- issue time against the clock -------------------------------------------------------------


def test_future_issue_time_is_rejected() -> None:
    now = datetime(2022, 5, 15, 2, 0, tzinfo=UTC)  # 09:00 in Vietnam; invoice says 09:30
    invoice, found = check(vn_invoice(), now=now)
    assert found == [("invoice.issued_at.future", "issued_at", E)]
    assert invoice is None


def test_issue_time_within_the_clock_tolerance_is_accepted() -> None:
    now = datetime(2022, 5, 15, 2, 25, tzinfo=UTC)  # five minutes before the issue time
    invoice, found = check(vn_invoice(), now=now)
    assert found == []
    assert invoice is not None


# --- notices ------------------------------------------------------------------------------------


def test_valid_cancel_notice() -> None:
    notice, out = validate_notice(cancel(5, notice_id="04SS-9"), CFG)
    assert out == []
    assert notice == CancelNotice(VnKey(SELLER, "1", "C22TAA", 5), "04SS-9", "wrong buyer")


def test_cancel_notice_of_a_cn_invoice() -> None:
    """A paper invoice (a 10-digit 专票 code) is voided; an e-invoice (`…11`, type 10) not:
    cn-invoice §4.4, 作废 is for "paper invoices"."""
    notice, out = validate_notice(
        cancel(1, key={"invoice_code": CN_CODE_SPECIAL, "invoice_number": "81532753"}), CFG
    )
    assert out == []
    assert isinstance(notice, CancelNotice)
    assert notice.key == CnKey(CN_CODE_SPECIAL, "81532753")
    notice, out = validate_notice(
        cancel(1, key={"invoice_code": CN_CODE_E, "invoice_number": "81532753"}), CFG
    )
    assert (notice, [(v.code, v.detail) for v in out]) == (
        None,
        [("cn.void.electronic", "type 10")],
    )


NOTICE_CASES: list[tuple[str, object, str, str | None]] = [
    ("not an object", "cancel", "invoice.field.invalid", None),
    ("kind", cancel(1, kind="void"), "notice.kind.invalid", "kind"),
    ("reason missing", cancel(1, reason=None), "notice.reason.required", "reason"),
    ("reason empty", cancel(1, reason=""), "notice.reason.required", "reason"),
    ("notice id missing", cancel(1, notice_id=None), "invoice.field.required", "notice_id"),
    ("key missing", cancel(1, key=None), "invoice.field.required", "key"),
    (
        "key MST",
        cancel(1, key=vn_key(1, seller_tax_id="0100233480")),
        "vn.tax_id.invalid",
        "key.seller_tax_id",
    ),
    ("key number 0", cancel(0), "vn.number.out_of_range", "key.number"),
    ("key series", cancel(1, key=vn_key(1, series="C22ZAA")), "vn.series.invalid", "key.series"),
    (
        "key scheme",
        cancel(1, key={**vn_key(1), "scheme": "us"}),
        "invoice.scheme.unknown",
        "key.scheme",
    ),
    (
        "key CN code",
        cancel(1, key={"invoice_code": "1", "invoice_number": "81532753"}),
        "cn.code.invalid",
        "key.invoice_code",
    ),
    (
        "voiding a 数电 invoice",  # cn-invoice §4.4: 作废 is for paper invoices
        cancel(1, key={"invoice_number": "23442000000014209621"}),
        "cn.void.fully_digitalised",
        "key",
    ),
    (
        "voiding an e-invoice",  # cn-invoice §4.4, §1.2: code suffix 12 is the toll type 14
        cancel(1, key={"invoice_code": "013002200212", "invoice_number": "81532753"}),
        "cn.void.electronic",
        "key",
    ),
]


@pytest.mark.parametrize(
    ("raw", "code", "field"), [c[1:] for c in NOTICE_CASES], ids=[c[0] for c in NOTICE_CASES]
)
def test_notice_error_rejects_with_exact_rule(raw: object, code: str, field: str | None) -> None:
    raw = with_(raw) if isinstance(raw, dict) else raw  # drop keys set to None
    notice, out = validate_notice(raw, CFG)
    assert triples(out) == [(code, field, E)]
    assert notice is None


# --- every rule these functions can emit is covered above ----------------------------------------


def test_every_field_rule_is_covered_here() -> None:
    covered = {c[2] for c in ERROR_CASES} | {c[2] for c in WARNING_CASES}
    covered |= {c[2] for c in NOTICE_CASES} | {"invoice.issued_at.future"}
    # Emitted only with the store (chain, notice targets), the registry, trust anchors
    # (seller signature: tests/indexer/test_signature.py), the monthly re-check
    # (tests/indexer/test_recheck.py), by reading XML (tests/indexer/test_vn_xml_standard.py)
    # or by reading a QR code (tests/verify/test_domain_intake_cn.py): tested elsewhere.
    elsewhere = ("chain.", "notice.target.", "registry.", "vn.signature.", "recheck.")
    elsewhere += ("vn.xml.", "vn.cash_register.", "cn.qr.")
    assert covered == {code for code in RULES if not code.startswith(elsewhere)}


def test_unknown_rule_in_severity_overrides_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no\.such\.rule"):
        RuleConfig(severity={"no.such.rule": Severity.OFF})


# --- found by review and fixed: these pin the fixes -------------------------------------------


def test_superscript_digit_number_is_refused_not_a_crash() -> None:
    invoice, found = check(with_(vn_invoice(1), number="²"))
    assert found == [("invoice.field.invalid", "number", E)]
    assert invoice is None


def test_buyer_tax_id_is_checked_on_an_invoice_without_authority_code() -> None:
    invoice, found = check(
        vn_invoice(series="K22TAA", authority_code=None, buyer_tax_id="0100233480")
    )
    assert found == [("vn.tax_id.invalid", "buyer_tax_id", E)]
    assert invoice is None


UNICODE_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # Arabic-Indic digits


@pytest.mark.parametrize(
    "raw",
    [
        vn_invoice(seller_tax_id=SELLER.translate(UNICODE_DIGITS)),
        vn_invoice(series="C22TAA".translate(UNICODE_DIGITS)),
        cn_invoice(invoice_code=CN_CODE_E.translate(UNICODE_DIGITS)),
        cn_invoice(invoice_number="81532753".translate(UNICODE_DIGITS)),
    ],
    ids=["vn seller", "vn series", "cn code", "cn number"],
)
def test_non_ascii_digits_do_not_make_a_new_identity(raw: dict[str, Any]) -> None:
    invoice, found = check(raw)
    assert invoice is None
    assert found
    assert all(severity is E for _, _, severity in found)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (with_(vn_invoice(1), number=1.0), "number"),
        (vn_invoice(issued_at=20220515), "issued_at"),
        (vn_invoice(authority_code="0" * 35), "authority_code"),
    ],
    ids=["number float", "issued_at int", "authority code 35 chars"],
)
def test_present_but_invalid_field_is_not_reported_missing(raw: dict[str, Any], field: str) -> None:
    invoice, found = check(raw)
    assert invoice is None
    assert [f for _, f, _ in found] == [field]
    assert not any(code.endswith("required") for code, _, _ in found)


def test_over_long_reason_is_not_reported_missing() -> None:
    notice, out = validate_notice(cancel(1, reason="x" * 256), CFG)
    assert triples(out) == [("invoice.field.invalid", "reason", E)]
    assert notice is None


def test_amount_rule_does_not_depend_on_the_echoed_value() -> None:
    invoice, found = check(vn_invoice(amount_before_tax="places"))
    assert found == [("invoice.amount.invalid", "amount_before_tax", E)]
    assert invoice is None


def test_structural_rules_refuse_a_severity_override() -> None:
    with pytest.raises(ValueError, match=r"cannot be reconfigured: vn\.series\.invalid"):
        RuleConfig(severity={"vn.series.invalid": Severity.WARNING})
    adjustable = RuleConfig(severity={"registry.seller.inactive": Severity.WARNING})
    assert adjustable.severity_of("registry.seller.inactive") is W


# --- package envelope ------------------------------------------------------------------------


def test_package_from_json_keeps_the_envelope() -> None:
    data = package([vn_invoice(1), cn_invoice()], [cancel(9)], package_id="PKG-20220515-000001")
    data["sender"] = f"  {PROVIDER} "
    pkg = package_from_json(data)
    assert pkg.package_id == "PKG-20220515-000001"
    assert pkg.sender == PROVIDER
    assert pkg.declared_count == 3
    assert pkg.item_count == 3
    assert pkg.invoices == [vn_invoice(1), cn_invoice()]
    assert pkg.notices == [cancel(9)]
    assert len(pkg.digest) == 64


def test_absent_or_null_lists_are_empty() -> None:
    data = {
        "package_id": "P1",
        "sender": PROVIDER,
        "declared_count": 1,
        "invoices": [vn_invoice()],
        "notices": None,
    }
    assert package_from_json(data).notices == []
    del data["notices"]
    assert package_from_json(data).notices == []


def _envelope(**over: Any) -> dict[str, Any]:
    data = package([vn_invoice(1)], package_id="PKG-1")
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


_ID, _SENDER = {"field": "package_id"}, {"field": "sender"}
_COUNT = {"field": "declared_count"}
ENVELOPE_CASES: list[tuple[str, object, str, dict[str, Any]]] = [
    ("not an object (list)", [], "package.malformed", {}),
    ("not an object (string)", "package", "package.malformed", {}),
    ("id missing", _envelope(package_id=None), "package.id_invalid", _ID),
    ("id empty", _envelope(package_id=""), "package.id_invalid", _ID),
    ("id not a string", _envelope(package_id=42), "package.id_invalid", _ID),
    ("id leading dash", _envelope(package_id="-PKG"), "package.id_invalid", _ID),
    ("id with space", _envelope(package_id="PKG 1"), "package.id_invalid", _ID),
    ("id too long", _envelope(package_id="P" * 65), "package.id_invalid", _ID),
    ("sender missing", _envelope(sender=None), "package.sender_invalid", _SENDER),
    ("sender blank", _envelope(sender="  "), "package.sender_invalid", _SENDER),
    ("sender not a string", _envelope(sender=101300842), "package.sender_invalid", _SENDER),
    ("count missing", _envelope(declared_count=None), "package.count_invalid", _COUNT),
    ("count negative", _envelope(declared_count=-1), "package.count_invalid", _COUNT),
    ("count bool", _envelope(declared_count=True), "package.count_invalid", _COUNT),
    ("count string", _envelope(declared_count="1"), "package.count_invalid", _COUNT),
    ("count float", _envelope(declared_count=1.0), "package.count_invalid", _COUNT),
    (
        "invoices not a list",
        _envelope(invoices={"0": vn_invoice()}),
        "package.malformed",
        {"field": "invoices"},
    ),
    ("notices not a list", _envelope(notices="cancel"), "package.malformed", {"field": "notices"}),
    ("empty", _envelope(declared_count=0, invoices=[]), "package.empty", {}),
    (
        "count too high",
        _envelope(declared_count=3),
        "package.count_mismatch",
        {"declared_count": 3, "actual": 1},
    ),
    (
        "count zero",
        _envelope(declared_count=0),
        "package.count_mismatch",
        {"declared_count": 0, "actual": 1},
    ),
]


@pytest.mark.parametrize(
    ("data", "code", "details"), [c[1:] for c in ENVELOPE_CASES], ids=[c[0] for c in ENVELOPE_CASES]
)
def test_bad_envelope_rejects_the_package(data: object, code: str, details: dict[str, Any]) -> None:
    with pytest.raises(PackageError) as caught:
        package_from_json(data)
    assert caught.value.code == code
    assert caught.value.status == 422
    assert caught.value.details == details


def test_count_mismatch_counts_notices_too() -> None:
    data = package([vn_invoice(1), vn_invoice(2)], [cancel(3)], declared=2)
    with pytest.raises(PackageError) as caught:
        package_from_json(data)
    assert (caught.value.code, caught.value.status) == ("package.count_mismatch", 422)
    assert caught.value.details == {"declared_count": 2, "actual": 3}


def test_too_many_items_is_413() -> None:
    data = package([vn_invoice(1), vn_invoice(2)], [cancel(3)])
    with pytest.raises(PackageError) as caught:
        package_from_json(data, max_items=2)
    assert (caught.value.code, caught.value.status) == ("package.too_many_items", 413)
    assert caught.value.details == {"limit": 2, "actual": 3}
    assert package_from_json(data, max_items=3).item_count == 3


def test_parse_json_package_reads_bytes() -> None:
    data = package([vn_invoice(1)], package_id="PKG-BYTES")
    pkg = parse_json_package(json.dumps(data, ensure_ascii=False).encode())
    assert pkg == package_from_json(data)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"package_id": }',
        b"\xff\xfe{}",
        b"{'package_id': 'P1'}",
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "empty",
        "unclosed",
        "syntax",
        "not utf-8",
        "single quotes",
        "deep unclosed",
        "deep closed",
    ],
)
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(PackageError) as caught:
        parse_json_package(body)
    assert (caught.value.code, caught.value.status) == ("package.malformed_json", 400)


def test_json_that_is_not_an_object_is_a_malformed_package() -> None:
    with pytest.raises(PackageError) as caught:
        parse_json_package(b"[1, 2]")
    assert (caught.value.code, caught.value.status) == ("package.malformed", 422)


def _body(invoices_json: bytes) -> bytes:
    return (
        b'{"package_id": "P1", "sender": "S", "declared_count": 1, "invoices": ['
        + invoices_json
        + b"]}"
    )


def test_huge_integer_is_a_package_error_not_a_crash() -> None:
    with pytest.raises(PackageError) as caught:
        parse_json_package(_body(b'{"number": 1' + b"0" * 5000 + b"}"))
    assert caught.value.status == 400


def test_lone_surrogate_is_a_package_error_not_a_crash() -> None:
    with pytest.raises(PackageError) as caught:
        parse_json_package(_body(b'{"seller_name": "\\ud800"}'))
    assert caught.value.status in {400, 422}


def test_any_nesting_depth_is_parsed_or_refused_never_a_crash() -> None:
    for depth in range(1, 1500):
        body = _body(b"[" * depth + b"]" * depth)
        with contextlib.suppress(PackageError):
            parse_json_package(body)


def test_digest_ignores_key_order_but_not_content() -> None:
    data = package([vn_invoice(1), cn_invoice()], [cancel(9)], package_id="PKG-D")

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    shuffled = reverse(data)
    assert list(shuffled) != list(data)
    assert package_from_json(shuffled).digest == package_from_json(data).digest
    body = json.dumps(shuffled, indent=2).encode()
    assert parse_json_package(body).digest == package_from_json(data).digest
    changed = package(
        [vn_invoice(1, total_amount="1100001"), cn_invoice()], [cancel(9)], package_id="PKG-D"
    )
    assert package_from_json(changed).digest != package_from_json(data).digest
    other_seller = package(
        [vn_invoice(1, seller_tax_id=SELLER_2), cn_invoice()], [cancel(9)], package_id="PKG-D"
    )
    assert package_from_json(other_seller).digest != package_from_json(data).digest


def test_a_known_digest_is_taken_as_given_and_every_other_check_still_runs() -> None:
    """The journal drain passes the digest computed when the body was received."""
    body = json.dumps(package([vn_invoice(1)], package_id="PKG-K")).encode()
    computed = parse_json_package(body)
    assert parse_json_package(body, digest=computed.digest) == computed
    data = package([vn_invoice(1), vn_invoice(2)], package_id="PKG-K")
    with pytest.raises(PackageError) as refused:
        parse_json_package(json.dumps(data).encode(), max_items=1, digest=computed.digest)
    assert refused.value.code == "package.too_many_items"
