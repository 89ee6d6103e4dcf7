from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.money import AmountError, format_amount, from_scaled, parse_amount, to_scaled


def test_amounts_are_decimal_and_stored_as_scaled_integers() -> None:
    amount = parse_amount("106.00")
    assert amount == Decimal("106")
    assert to_scaled(amount) == 1_060_000
    assert format_amount(from_scaled(1_060_000)) == "106"
    assert format_amount(from_scaled(10_000_000)) == "1000"


@pytest.mark.parametrize("bad", [1.5, None, True, "abc", "NaN", "Infinity", "", [1]])
def test_non_decimal_amounts_are_refused(bad: object) -> None:
    with pytest.raises(AmountError):
        parse_amount(bad)


def test_precision_limit() -> None:
    assert parse_amount("1.25", max_places=2) == Decimal("1.25")
    with pytest.raises(AmountError, match="decimal places"):
        parse_amount("1.255", max_places=2)
    assert parse_amount("1.2500", max_places=2) == Decimal("1.25")


def test_too_large_for_int64_is_refused() -> None:
    with pytest.raises(AmountError, match="too large"):
        parse_amount("1" + "0" * 16)


@given(st.decimals(min_value=-10**12, max_value=10**12, places=4, allow_nan=False,
                   allow_infinity=False))
def test_scaled_round_trip_is_exact(amount: Decimal) -> None:
    assert from_scaled(to_scaled(amount)) == amount
    assert parse_amount(format_amount(from_scaled(to_scaled(amount)))) == amount


@pytest.mark.parametrize("text", ["0", "007", "1100000", "99999999999999", "999999999999999",
                                  "922337203685477", " 12 ", "12.50"])
def test_plain_digits_parse_as_the_general_path_does(text: str) -> None:
    """The plain-digits shortcut answers what the checks would: same value, same exponent
    (a Decimal keeps "12.50" and "1100000" as written), and whatever it refuses is refused
    by the general path with the same message."""
    try:
        expected: Decimal | str = Decimal(text.strip())
        if abs(expected) * 10**4 > 2**63 - 1:
            expected = "too large"
    except InvalidOperation:
        expected = "invalid"
    try:
        got: Decimal | str = parse_amount(text)
    except AmountError as exc:
        got = "too large" if exc.kind == "range" else str(exc)
    assert got == expected
    if isinstance(got, Decimal) and isinstance(expected, Decimal):
        assert got.as_tuple() == expected.as_tuple()


@pytest.mark.parametrize("text", ["1e999999", "1E+999999999", "-1e999999", "1e-999999999",
                                  "NaN", "sNaN", "-Infinity", "9" * 5000, "0." + "1" * 5000,
                                  "²", "①", "٣", "１２", "1\x00", "\ud800", "1e15",
                                  "922337203685478"])
def test_hostile_amounts_are_refused_with_an_amount_error(text: str) -> None:
    """Issue 15: exponents of any size, NaN, thousands of digits and other scripts' digits
    (which `Decimal()` reads) are refused as `AmountError`, never `decimal.Overflow` or
    `InvalidOperation` from arithmetic on them."""
    with pytest.raises(AmountError):
        parse_amount(text)


def test_zero_with_any_exponent_is_plain_zero() -> None:
    assert parse_amount("0E+999999999") == 0
    assert parse_amount("0E+999999999").as_tuple().exponent == 0
