import pytest

from indexer import vn


@pytest.mark.parametrize(
    ("mst", "valid"),
    [
        ("0100109106", True),
        ("0102671977", True),
        ("0314409058-002", True),
        ("0314409058002", True),
        ("0110000080", True),
        ("0100233480", False),  # check digit 0, expected 8
        ("0100109107", False),
        ("0100000000", False),  # N3-N9 all zero
        ("0314409058-000", False),  # branch suffix 000
        ("010010910", False),
        ("01001091060", False),
        ("abcdefghij", False),
    ],
)
def test_mst_check_digit_follows_spec_table(mst: str, valid: bool) -> None:
    assert vn.mst_valid(mst) is valid


def test_check_digit_for_prefix_with_no_valid_mst() -> None:
    assert vn.mst_check_digit("011000008") == 0
    assert vn.mst_check_digit("011000001") is None
    assert vn.mst_check_digit("010010910") == 6


def test_personal_id_is_a_tax_id_but_not_an_mst() -> None:
    assert vn.tax_id_valid("001099012345")
    assert not vn.mst_valid("001099012345")


@pytest.mark.parametrize("personal_id", ["000000000000", "000099012345"])
def test_a_personal_id_of_no_province_is_refused(personal_id: str) -> None:
    """Spec §3: the 12-digit form is the personal identification number; its first three
    digits are the issuing province's code, and no province has `000`."""
    assert not vn.tax_id_valid(personal_id)


def test_branch_tax_id_is_normalised_with_dash() -> None:
    assert vn.normalise_tax_id("0314409058002") == "0314409058-002"
    assert vn.normalise_tax_id("0100109106") == "0100109106"


@pytest.mark.parametrize(
    ("series", "parsed"),
    [
        ("C22TAA", vn.Series(True, 22, "T", "AA")),
        ("K25TEK", vn.Series(False, 25, "T", "EK")),
        ("C23MXY", vn.Series(True, 23, "M", "XY")),
        ("C26FYY", vn.Series(True, 26, "F", "YY")),
    ],
)
def test_series_parsing(series: str, parsed: vn.Series) -> None:
    assert vn.parse_series(series) == parsed


@pytest.mark.parametrize("series", ["C22TA", "A22TAA", "C2XTAA", "C22ZAA", "C22Taa", "1C22TAA"])
def test_series_rejected(series: str) -> None:
    assert vn.parse_series(series) is None


def test_seven_char_series_with_template_prefix_is_normalised() -> None:
    assert vn.normalise_series("1C26TAA", "1") == "C26TAA"
    assert vn.normalise_series("2C26TAA", "1") == "2C26TAA"


@pytest.mark.parametrize(("given", "expected"), [("đ", "VND"), ("VNĐ", "VND"), ("usd", "USD")])
def test_currency_normalisation(given: str, expected: str) -> None:
    assert vn.normalise_currency(given) == expected
