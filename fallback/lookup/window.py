"""The authority's verification window (docs/lookups.md#older-than-the-verification-window):
the GDT portal and the 查验 platform check invoices of the last 5 years only
(docs/cn-rules.md §4). A lookup that finds nothing, for an invoice whose issue day is known
to lie before the window, is answered `outside_window`, not `not_found`: that no record is
here says nothing about such an invoice.

The issue day is known from `issued_on` when given; otherwise its latest possible day from
the key: the year of a Vietnamese series (`C22TAA`: 2022) or of a 数电 number (its first
two digits)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fallback.lookup.query import LookupQuery
from indexer import vn
from indexer.keys import CnKey, VnKey

STATUS = "outside_window"
REASON = "older_than_verification_window"


def window_start(today: date, years: int) -> date:
    """The first day inside a window of `years` years ending `today` (29 February: the 28th)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def latest_issue_day(query: LookupQuery) -> date | None:
    """The latest day the asked invoice can have been issued, as far as the query tells."""
    if query.match.issued_on is not None:
        return query.match.issued_on
    key = query.key
    if isinstance(key, VnKey):
        series = vn.parse_series(key.series)
        return None if series is None else date(2000 + series.year, 12, 31)
    if isinstance(key, CnKey) and key.code is None and key.number[:2].isdigit():
        return date(2000 + int(key.number[:2]), 12, 31)
    return None


def outside_window(
    answer: dict[str, Any], query: LookupQuery, today: date, years: int
) -> dict[str, Any]:
    """A `not_found` answer as `outside_window` when the invoice predates the window
    (`years` 0: no window); any other answer as it is."""
    if answer["status"] != "not_found" or years <= 0:
        return answer
    latest = latest_issue_day(query)
    start = window_start(today, years)
    if latest is None or latest >= start:
        return answer
    return {
        **answer,
        "status": STATUS,
        "reason": REASON,
        "window_years": years,
        "window_start": start.isoformat(),
    }
