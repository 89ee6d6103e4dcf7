"""Outside values, checked in one place: digits, counts and text as they arrive in packages,
query parameters, QR payloads, ledger cells and file names.

Python's own parsers are too generous or too fragile for values that come from outside:
- `str.isdigit()` is true for `²`, `①` and every script's digits, and `int()` then either
  refuses them (`²`, `①`: ValueError) or reads them (Arabic-Indic `٣`, fullwidth `３`);
- `int()` refuses more than 4,300 digits (`sys.get_int_max_str_digits`) with a ValueError that
  callers do not expect, and `Decimal()` accepts exponents that overflow the first arithmetic;
- a string may hold NUL or a lone surrogate, which SQLite, Elasticsearch and every encoder
  downstream treat differently.

Every parse of such a value goes through these functions: they return None (or raise
`ValueError` with a message fit for a user, in `parse_*`) and never anything else.
"""

from __future__ import annotations

import re

#: ASCII digits only; `\d` would match every script's digits.
_ASCII_DIGITS = re.compile(r"[0-9]+")
#: A count or size in a body or query string never needs more than this many digits;
#: 18 digits stay below 2**63, so every accepted value fits a signed 64-bit column.
MAX_INT_DIGITS = 18
#: Control characters no text field of ours may carry (NUL, C0 but tab/LF/CR, DEL).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_ascii_digits(text: str, *, max_digits: int = MAX_INT_DIGITS) -> bool:
    """True for 1 to `max_digits` ASCII digits and nothing else."""
    return 0 < len(text) <= max_digits and _ASCII_DIGITS.fullmatch(text) is not None


def ascii_int(value: object, *, max_digits: int = MAX_INT_DIGITS) -> int | None:
    """A non-negative integer from ASCII digits (or a plain int, not a bool); None for anything
    else: signs, spaces, other scripts' digits, superscripts, more than `max_digits` digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**max_digits else None
    if isinstance(value, str) and is_ascii_digits(value, max_digits=max_digits):
        return int(value)
    return None


def parse_bounded_int(value: object, *, low: int, high: int, name: str) -> int:
    """An integer within [low, high] from ASCII digits; `ValueError` naming `name` otherwise."""
    number = ascii_int(value, max_digits=len(str(high)))
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return number


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored or compared as given, or None when it can: NUL and other
    control characters, lone surrogates (not encodable as UTF-8)."""
    if _CONTROL.search(text):
        return "contains a control character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def clean_text(value: object, *, max_len: int) -> str | None:
    """Stripped text fit to store: None for a non-string, whitespace only, longer than
    `max_len`, or with a `text_problem`."""
    if not isinstance(value, str) or len(value) > max_len:
        return None
    stripped = value.strip()
    if not stripped or text_problem(stripped) is not None:
        return None
    return stripped
