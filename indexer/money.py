"""Money: `Decimal` in the model, scaled integers in storage, never float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: Storage keeps every amount as an integer number of 1/10_000 units (4 decimal places).
#: That covers VND (whole dong, occasionally fractional in XML) and CNY (fen) exactly and keeps
#: totals up to 922 trillion in a signed 64-bit integer (SQLite INTEGER, Elasticsearch long).
SCALE = 4
_FACTOR = 10**SCALE
_INT64_MAX = 2**63 - 1
#: At most this many ASCII digits: below 10**14, so `abs(amount) * _FACTOR` < 2**63.
_PLAIN_DIGITS = 14


class AmountError(ValueError):
    """An amount that is not a finite decimal, or is too precise or too large to store.
    `kind` says which: "invalid", "precision" or "range"."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def parse_amount(value: object, *, max_places: int = SCALE) -> Decimal:
    """Parse a decimal string (or int) into a `Decimal`; floats are refused on purpose."""
    if type(value) is str and len(value) <= _PLAIN_DIGITS and value.isdigit() \
            and value.isascii():
        # Plain digits, the usual amount: finite, no places, at most 14 digits, so within
        # range whatever the scale; what the checks below would conclude, without them.
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AmountError("amount must be a decimal string")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise AmountError(f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise AmountError(f"{value!r} is not a finite number")
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals have an int exponent
    if -exponent > max_places:
        raise AmountError(f"{value!r} has more than {max_places} decimal places", "precision")
    if abs(amount) * _FACTOR > _INT64_MAX:
        raise AmountError(f"{value!r} is too large", "range")
    return amount


def to_scaled(amount: Decimal) -> int:
    scaled = amount * _FACTOR
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{amount} has more than {SCALE} decimal places", "precision")
    return int(scaled)


def from_scaled(value: int) -> Decimal:
    return Decimal(value).scaleb(-SCALE).normalize()


def format_amount(amount: Decimal) -> str:
    """Canonical text form: no exponent, no trailing zeros after the point."""
    return f"{amount.normalize():f}"
