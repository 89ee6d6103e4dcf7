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
#: No amount needs more characters than this (14 digits, a sign, a point and places, with
#: room for an exponent form); longer text is refused before `Decimal()` reads it.
MAX_AMOUNT_CHARS = 64


class AmountError(ValueError):
    """An amount that is not a finite decimal, or is too precise or too large to store.
    `kind` says which: "invalid", "precision" or "range"."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def parse_amount(value: object, *, max_places: int = SCALE) -> Decimal:
    """Parse a decimal string (or int) into a `Decimal`; floats are refused on purpose.

    Every outside amount comes through here, so nothing it is given may raise anything but
    `AmountError`: the text is bounded (`MAX_AMOUNT_CHARS`) and ASCII (`Decimal()` reads
    Arabic-Indic and fullwidth digits) before `Decimal()` sees it, and the exponent is checked
    (`adjusted()`, no arithmetic) before any arithmetic, which would overflow the context for
    `1e999999` or `1E+999999999`."""
    if type(value) is str and len(value) <= _PLAIN_DIGITS and value.isdigit() \
            and value.isascii():
        # Plain digits, the usual amount: finite, no places, at most 14 digits, so within
        # range whatever the scale; what the checks below would conclude, without them.
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AmountError("amount must be a decimal string")
    if isinstance(value, int):
        if abs(value) >= 10**_PLAIN_DIGITS:
            raise AmountError("the amount is too large", "range")
        return Decimal(value)
    text = value.strip()
    shown = text if len(text) <= 40 else text[:37] + "..."
    if len(text) > MAX_AMOUNT_CHARS or not text.isascii():
        raise AmountError(f"{shown!r} is not a decimal number")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise AmountError(f"{shown!r} is not a decimal number") from None
    if not amount.is_finite():
        raise AmountError(f"{shown!r} is not a finite number")
    if not amount:
        return Decimal(0)  # `0E+999999999` is zero; its exponent must not travel on
    if amount.adjusted() > _PLAIN_DIGITS:  # 10**15 and more: beyond the int64 bound
        raise AmountError(f"{shown!r} is too large", "range")
    if _places(amount) > max_places:
        raise AmountError(f"{shown!r} has more than {max_places} decimal places", "precision")
    if abs(amount) * _FACTOR > _INT64_MAX:
        raise AmountError(f"{shown!r} is too large", "range")
    return amount


def _places(amount: Decimal) -> int:
    """Decimal places of a finite amount, trailing zeros aside, without context arithmetic
    (`normalize()` would round or underflow an exponent like -999999999)."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite decimals have an int exponent
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    if not significant:  # zero, whatever its exponent
        return 0
    return max(0, -(exponent + len(digits) - significant))


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
