"""Adversarial hypothesis strategies for outside values (issue 15, point 1): what a hostile or
broken client puts where a number, an amount, a date, a tax id, a code, a count or a text is
expected. Shared by the fuzz of the live server (tests/verify/test_fuzz.py) and the parser
tests; every strategy here draws values that must be refused cleanly (a rule violation or a
4xx), never crash a parser, and never wedge the intake journal."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Digits Python's `str.isdigit()` accepts and `int()`/`Decimal()` accept or choke on.
UNICODE_DIGITS = ("²³¹⁰"  # superscripts: isdigit() true, int() fails
                  "①②⑨"  # circled: isdigit() true, int() fails
                  "٠١٢٣٤٥٦٧٨٩"  # Arabic-Indic: int() reads them
                  "۰۱۲۳۴۵۶۷۸۹"  # Extended Arabic-Indic (Persian)
                  "０１２３４５６７８９"  # fullwidth
                  "०१२३४५६७८९"  # Devanagari
                  "𝟎𝟏𝟐𝟑")  # mathematical bold (astral plane)

#: Values that each broke (or nearly broke) a parser somewhere: exponents of any size, the
#: special floats, numbers past int()'s 4,300-digit limit and past 64 bits, whitespace only,
#: NUL and other controls, a lone surrogate, other scripts' digits.
HOSTILE_STRINGS: tuple[str, ...] = (
    "1e999999", "1E+999999999", "1e-999999999", "-1e999999", "9e99999999999999999999",
    "0E-1000000", "1.5e", "NaN", "nan", "sNaN", "-sNaN", "Infinity", "-Infinity", "inf",
    "9" * 4301, "1" * 5000, "0." + "1" * 3000, str(2**64), str(2**63), str(-(2**63) - 1),
    "18446744073709551616", "-1", "-0", "0", "00", "+1", "1_000", "0x10", "1,000.00",
    "", " ", "   ", "\t", "\n", "\u00a0", "\u3000", "\u200b",
    "\x00", "a\x00b", "\x07", "\x1b[31m", "\x7f", "\ud800", "a\udfffb",
    "²", "①", "٣", "３", "²²²²²²²²", "١٢٣٤٥٦٧٨", "０１００１０９１０６", "٢٠٢٢-٠٥-١٥",
    "2022-02-30", "2022-13-01", "0000-01-01", "9999-12-31T23:59:59+14:00", "99999-01-01",
    "%", "%00", "'--", "\"", "<x/>", "&amp;", "]]>", "{}", "[]", "null", "true",
    "x" * 5000,
)

#: Integers at and past every boundary a count, number or size may meet.
HOSTILE_INTS: tuple[int, ...] = (0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64,
                                 -(2**63) - 1, 10**18, 10**19, 10**4000, 99_999_999,
                                 100_000_000)


def hostile_digits(min_size: int = 1, max_size: int = 30) -> st.SearchStrategy[str]:
    """Digit strings mixing ASCII and other scripts' digits."""
    return st.text(alphabet="0123456789" + UNICODE_DIGITS, min_size=min_size,
                   max_size=max_size)


def hostile_numbers() -> st.SearchStrategy[str]:
    """Amount-like text: exponents of any size, decimals of any length, signs."""
    return st.builds(lambda sign, digits, exp: f"{sign}{digits}{exp}",
                     st.sampled_from(["", "-", "+"]),
                     st.from_regex(r"[0-9]{1,40}(\.[0-9]{0,40})?", fullmatch=True),
                     st.one_of(st.just(""), st.integers(-10**12, 10**12).map(lambda e: f"e{e}"),
                               st.integers(0, 10**12).map(lambda e: f"E+{e}")))


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any of the known-bad strings, hostile digits and numbers, or arbitrary text
    including controls and lone surrogates."""
    return st.one_of(st.sampled_from(HOSTILE_STRINGS), hostile_digits(), hostile_numbers(),
                     st.text(max_size=max_size))


def hostile_scalars() -> st.SearchStrategy[Any]:
    """A JSON scalar of any type where a field of one type is expected."""
    return st.one_of(hostile_text(), st.sampled_from(HOSTILE_INTS),
                     st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                     st.booleans(), st.none())


def hostile_json(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Hostile scalars, and lists and objects of them (wrong JSON types for any field)."""
    return st.recursive(
        hostile_scalars(),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(HOSTILE_STRINGS[:40])),
                          children, max_size=4),
        max_leaves=max_leaves)


def hostile_value() -> st.SearchStrategy[Any]:
    """What replaces one field of an otherwise valid body: mostly hostile text and scalars,
    sometimes a structure."""
    return st.one_of(hostile_text(), hostile_scalars(), hostile_json(max_leaves=6))
