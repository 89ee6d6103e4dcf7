"""QR text parsing: every Chinese type code and shape of docs/cn-rules.md#3-the-invoice-qr-code,
the Vietnamese shapes of docs/vn-rules.md#9-lookups-and-qr-codes, our own IVQR1, and texts
that are not invoice QRs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from indexer.cn import TYPE_CODES
from indexer.keys import CnKey, VnKey
from indexer.rules import RuleConfig
from verify.qr.payload import CnAmount, our_payload, parse_payload

CFG = RuleConfig()
E_INVOICE = "01,10,013002200211,81532753,217.62,20230323,49753264642977383169,0816,"
DIGITAL = "01,32,,23442000000014209621,112,20230215,,74AE"
SPECIAL = "01,01,4300171130,02550485,10545.43,20180115,6579,"


def test_e_invoice_fields_map_to_key_and_match_fields() -> None:
    parsed = parse_payload(E_INVOICE, CFG)
    assert parsed.error is None
    assert parsed.query is not None
    assert parsed.query.key == CnKey("013002200211", "81532753")
    match = parsed.query.match
    assert (match.amount, match.total_amount) == (Decimal("217.62"), None)
    assert match.issued_on == date(2023, 3, 23)
    assert match.check_code == "49753264642977383169"
    p = parsed.payload
    assert (p["format"], p["version"], p["type_code"], p["tail"], p["raw"]) == (
        "cn-qr", "01", "10", "0816", E_INVOICE)
    assert (p["type_known"], p["type_from_code"], p["amount_compared_as"]) == (True, "10",
                                                                               "amount")


def test_fully_digitalised_invoice_has_no_code_and_compares_the_total() -> None:
    parsed = parse_payload(DIGITAL, CFG)
    assert parsed.query is not None
    assert parsed.query.key == CnKey(None, "23442000000014209621")
    assert parsed.query.match.total_amount == Decimal("112")
    assert parsed.query.match.check_code is None
    assert parsed.payload["tail"] == "74AE"
    assert parsed.payload["invoice_code"] is None


def test_special_invoice_tail_at_index_6_is_not_a_check_code() -> None:
    parsed = parse_payload(SPECIAL, CFG)
    assert parsed.query is not None
    assert parsed.query.match.check_code is None
    assert parsed.payload["tail"] == "6579"
    assert parsed.payload["type_from_code"] == "01"


@pytest.mark.parametrize(("choice", "amount", "total"), [
    (CnAmount.AMOUNT, Decimal("217.62"), None),
    (CnAmount.TOTAL, None, Decimal("217.62")),
    (CnAmount.OFF, None, None),
])
def test_amount_field_meaning_is_configurable(choice: CnAmount, amount: Decimal | None,
                                              total: Decimal | None) -> None:
    parsed = parse_payload(E_INVOICE, CFG, choice)
    assert parsed.query is not None
    assert (parsed.query.match.amount, parsed.query.match.total_amount) == (amount, total)


@pytest.mark.parametrize("type_code", sorted(TYPE_CODES))
def test_every_type_code_of_the_spec_is_known(type_code: str) -> None:
    # a code whose type cannot be derived (suffix 99), so no type contradicts it
    text = f"01,{type_code},044031900199,12345678,100.00,20241114,12345678901234567890,AB12,"
    parsed = parse_payload(text, CFG)
    assert parsed.error is None
    assert parsed.payload["type_code"] == type_code
    assert parsed.payload["type_known"] is True
    assert parsed.payload["type_name"] == TYPE_CODES[type_code]


def test_unknown_type_code_is_kept_and_flagged_not_refused() -> None:
    parsed = parse_payload("01,77,044031900111,12345678,1.00,20241114,,AB12", CFG)
    assert parsed.query is not None
    assert (parsed.payload["type_known"], parsed.payload["type_name"]) == (False, None)


@pytest.mark.parametrize("text", [
    "01,10,0130022002,81532753,217.62,20230323,,0816",  # 10-digit code: fine, 12 wrong below
    "01,32,,23442000000014209621,112,20230215,,74AE,",
])
def test_trailing_and_empty_fields_are_positional(text: str) -> None:
    assert parse_payload(text, CFG).query is not None


@pytest.mark.parametrize("text", [
    "01,10,01300220021,81532753,217.62,20230323,,0816",  # 11-digit code
    "01,32,,2344200000001420962,112,20230215,,74AE",  # 19-digit number without code
    "01,10,013002200211,81532753,abc,20230323,,0816",  # amount
    "01,10,013002200211,81532753,1.00,20231332,,0816",  # date
])
def test_broken_invoice_qr_is_invalid_not_ignored(text: str) -> None:
    parsed = parse_payload(text, CFG)
    assert parsed.query is None
    assert parsed.error is not None
    assert parsed.error["code"] == "invalid_invoice_qr"


@pytest.mark.parametrize(("text", "form"), [
    ("https://hddt.example.vn/tra-cuu?nbmst=0100109106&khmshdon=1&khhdon=C22TAA&shdon=123",
     "vn-url"),
    ("https://hddt.example.vn/#/lookup?MST=0100109106&KHHDON=1C22TAA&SHDON=0000123", "vn-url"),
    ("mst=0100109106;khmshdon=1;khhdon=C22TAA;shdon=123", "vn-pairs"),
    ("0100109106|1|C22TAA|123", "vn-fields"),
    ("0100109106;1C22TAA;0000123", "vn-fields"),
    ("0100109106,1,C22TAA,123,1100000,2022-05-15", "vn-fields"),
    ("IVQR1|vn|0100109106|1|C22TAA|123|1100000|2022-05-15", "ivqr1"),
    ("vn:0100109106:1:C22TAA:123", "doc-id"),
])
def test_vietnamese_shapes_name_the_same_invoice(text: str, form: str) -> None:
    parsed = parse_payload(text, CFG)
    assert parsed.error is None, parsed.error
    assert parsed.query is not None
    assert parsed.query.key == VnKey("0100109106", "1", "C22TAA", 123)
    assert parsed.payload["format"] == form


def test_vietnamese_url_amount_and_date_are_matched() -> None:
    parsed = parse_payload("https://x.vn/q?nbmst=0100109106&khmshdon=1&khhdon=C22TAA&shdon=1"
                           "&tgtttbso=1100000&nlap=2022-05-15", CFG)
    assert parsed.query is not None
    assert parsed.query.match.total_amount == Decimal("1100000")
    assert parsed.query.match.issued_on == date(2022, 5, 15)


@pytest.mark.parametrize("code", ["00ABCDEF0123456789ABCDEF0123456789",
                                  "M1-22-ABCDE-00000000009"])
def test_authority_code_alone_or_in_a_url(code: str) -> None:
    for text in (code, f"https://tracuu.example.vn/?mccqt={code}"):
        parsed = parse_payload(text, CFG)
        assert parsed.query is not None
        assert (parsed.query.key, parsed.query.authority_code) == (None, code)


def test_chinese_check_url_is_read() -> None:
    parsed = parse_payload("https://inv-veri.example.cn/?fpdm=013002200211&fphm=81532753"
                           "&kprq=20230323&jym=49753264642977383169&je=217.62", CFG)
    assert parsed.query is not None
    assert parsed.query.key == CnKey("013002200211", "81532753")
    assert parsed.query.match.amount == Decimal("217.62")
    assert parsed.payload["format"] == "cn-url"


@pytest.mark.parametrize("text", [
    "https://shop.example.com/menu?table=4", "WIFI:S:cafe;T:WPA;P:secret;;", "hello world",
    "", "   ", "BEGIN:VCARD\nFN:Nguyễn Văn A\nEND:VCARD", "x" * 5000, "01,10",
])
def test_texts_that_are_not_invoice_qr(text: str) -> None:
    parsed = parse_payload(text, CFG)
    assert parsed.query is None
    assert parsed.error is not None
    assert parsed.error["code"] == "no_invoice_qr"
    assert parsed.payload["raw"] == text


def test_vietnamese_key_with_bad_check_digit_is_invalid() -> None:
    parsed = parse_payload("0100109107|1|C22TAA|123", CFG)
    assert parsed.error is not None
    assert parsed.error["code"] == "invalid_invoice_qr"
    assert parsed.error["details"]["violations"]


@pytest.mark.parametrize(("key", "total", "issued"), [
    (VnKey("0100109106", "1", "C22TAA", 123), Decimal("1100000"), date(2022, 5, 15)),
    (CnKey("013002200211", "81532753"), Decimal("217.62"), date(2023, 3, 23)),
    (CnKey(None, "23442000000014209621"), None, None),
])
def test_our_payload_round_trips(key: VnKey | CnKey, total: Decimal | None,
                                 issued: date | None) -> None:
    parsed = parse_payload(our_payload(key, total, issued), CFG)
    assert parsed.query is not None
    assert parsed.query.key == key
    assert parsed.query.match.total_amount == total
    assert parsed.query.match.issued_on == issued


def test_chinese_qr_with_empty_amount_and_date_checks_the_key_only() -> None:
    parsed = parse_payload("01,10,044031900111,17919920,,,,", CFG)
    assert parsed.query is not None
    assert parsed.query.match == type(parsed.query.match)()
    assert parsed.payload["amount_compared_as"] is None
