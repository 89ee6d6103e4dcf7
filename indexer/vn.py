"""Vietnamese identity formats (docs/vn-rules.md §1-§3): tax id, template, series, codes."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_MST_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)
_MST_RE = re.compile(r"(\d{10})(?:-?(\d{3}))?", re.ASCII)
_PERSONAL_ID_RE = re.compile(r"\d{12}", re.ASCII)
SERIES_RE = re.compile(
    r"(?P<code>[CK])(?P<yy>\d{2})(?P<kind>[TDLMNBGHXF])(?P<own>[A-Z0-9]{2})", re.ASCII
)
AUTHORITY_CODE_RE = re.compile(r"[0-9A-F]{34}", re.ASCII)
CASH_REGISTER_CODE_RE = re.compile(
    r"M(?P<digit>\d)-(?P<yy>\d{2})-(?P<range>[A-Z0-9]{5})-(?P<seq>\d{11})", re.ASCII
)
TEMPLATES = frozenset("123456789")
#: Series years (positions 2-3) run from 21: these series began with Decree 123 (§1.2).
FIRST_SERIES_YEAR = 21
#: Series letters always issued with an authority code (§1.2, §2.2): cash-register invoices
#: (`M`, "series `C..M..`") and invoices the tax office issues per occurrence (`L`).
CODED_KINDS = frozenset("ML")
#: Template 6 is the delivery notes' (§1.1), and so are series letters `N` (internal
#: transfer) and `B` (agent consignment) (§1.2): each goes with the other only.
DELIVERY_TEMPLATE = "6"
DELIVERY_KINDS = frozenset("NB")
MAX_NUMBER = 99_999_999

T = TypeVar("T")


def _memo(fn: Callable[[str], T]) -> Callable[[str], T]:
    """For pure checks of identifiers that recur in every package (a seller's tax id and
    series, its regular buyers): answers kept for 4096 distinct values of at most 32
    characters (longer ones are rare, and not worth keeping)."""
    cached = functools.lru_cache(maxsize=4096)(fn)

    @functools.wraps(fn)
    def memo(value: str) -> T:
        return cached(value) if len(value) <= 32 else fn(value)

    return memo


@_memo
def normalise_tax_id(value: str) -> str:
    """Canonical MST text: spaces removed, branch suffix written with a dash."""
    compact = value.replace(" ", "")
    m = _MST_RE.fullmatch(compact)
    if m and m[2]:
        return f"{m[1]}-{m[2]}"
    return compact


@_memo
def mst_valid(value: str) -> bool:
    """10-digit MST or 13-digit branch MST with the N10 check digit (§3)."""
    m = _MST_RE.fullmatch(value.replace(" ", ""))
    if not m or m[1][2:9] == "0000000" or m[2] == "000":
        return False
    r = sum(w * int(d) for w, d in zip(_MST_WEIGHTS, m[1], strict=False)) % 11
    return r != 0 and (10 - r) % 10 == int(m[1][9])


@_memo
def tax_id_valid(value: str) -> bool:
    """An MST, or the 12-digit personal id used by individuals and households (§3), whose
    first three digits name the province that issued it: `000` names none."""
    return mst_valid(value) or bool(_PERSONAL_ID_RE.fullmatch(value) and value[:3] != "000")


def mst_check_digit(prefix9: str) -> int | None:
    """The N10 digit completing a 9-digit prefix, or None when no valid MST exists for it."""
    r = sum(w * int(d) for w, d in zip(_MST_WEIGHTS, prefix9, strict=True)) % 11
    return None if r == 0 else (10 - r) % 10


def normalise_series(series: str, template: str) -> str:
    """Strip a template digit wrongly prefixed to the series (`1C22TAA` -> `C22TAA`, §1.2)."""
    if len(series) == 7 and series[0] == template:
        return series[1:]
    return series


@dataclass(frozen=True, slots=True)
class Series:
    with_code: bool
    year: int  # two-digit year as written
    kind: str
    own: str


@_memo
def parse_series(series: str) -> Series | None:
    m = SERIES_RE.fullmatch(series)
    if not m:
        return None
    return Series(with_code=m["code"] == "C", year=int(m["yy"]), kind=m["kind"], own=m["own"])


def normalise_currency(value: str) -> str:
    """`đ` and `VNĐ` seen in real data mean VND (§5.2)."""
    v = value.strip()
    return "VND" if v in {"đ", "VNĐ", "vnđ", "VNđ"} else v.upper()
