import pytest

from indexer import cn


@pytest.mark.parametrize(
    ("code", "type_code"),
    [
        ("013002200211", "10"),  # e-invoice ordinary (spec §3.3 sample)
        ("044001500111", "10"),
        ("4300171130", "01"),  # 10-digit, digit 8 = 1: special
        ("1100163320", "04"),  # digit 8 = 3: ordinary
        ("1100162720", "02"),  # digit 8 = 7: freight
        ("044031900104", "04"),
        ("044031900106", "11"),
        ("044031900112", "14"),
        ("044031900113", "08"),
        ("144031520110", "03"),  # first digit not 0, digit 8 = 2: motor vehicle
        ("244031520110", None),  # §1.4: digit 1 = 2 is a local-tax invoice, never a VAT one
        ("344031520110", None),  # no layout starts with 3
        ("144032409110", None),  # pilot e-invoice code: not derivable
        ("044031900199", None),
        ("12345", None),
    ],
)
def test_type_from_code(code: str, type_code: str | None) -> None:
    assert cn.type_from_code(code) == type_code


@pytest.mark.parametrize(
    ("number", "type_code"),
    [
        ("23442000000014209621", "32"),
        ("25448000000012345678", "61"),
        ("26339000000012345678", "51"),
    ],
)
def test_type_from_digital_number(number: str, type_code: str) -> None:
    assert cn.type_from_number20(number) == type_code


def test_e_special_qr_type_equals_platform_type() -> None:
    assert cn.same_type("20", "08")
    assert not cn.same_type("10", "08")


@pytest.mark.parametrize(
    ("code", "outside"),
    [
        ("244031920011", True),  # §1.4: local tax
        ("944031920011", True),
        ("144031920011", False),  # state tax: motor vehicle (§1.2) or a pilot code
        ("013002200211", False),
        ("4300171130", False),  # 10 digits: §1.1
    ],
)
def test_codes_outside_the_vat_layouts(code: str, outside: bool) -> None:
    assert cn.outside_vat_layouts(code) is outside


@pytest.mark.parametrize(
    ("qr_type", "derived", "disagrees"),
    [
        ("01", "10", True),
        ("10", "10", False),
        ("20", "08", False),  # §3.2: 20 is the QR's name for 08
        ("32", "04", False),  # §3.2: 32 with a code is a 数电 paper invoice
        ("99", "10", False),  # unknown types are reported, not compared
        ("01", None, False),
    ],
)
def test_a_qr_type_against_its_code(qr_type: str, derived: str | None, disagrees: bool) -> None:
    assert cn.type_disagrees_with_code(qr_type, derived) is disagrees
