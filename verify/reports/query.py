"""What every report's query holds besides its scope: the period (`year`, or `from`/`to`),
the format, and who may ask for it. A report's request is built from typed values (the
command line's options) or read from a query (`read_period`, after `verify.http.params`
read the names and values); a value it cannot take is 400 `invalid_report_query`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from indexer.text import ascii_int
from verify.access.roles import Principal
from verify.http.errors import ApiError
from verify.http.params import Query

FORMATS = ("json", "csv")
CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def bad_query(message: str, **details: Any) -> ApiError:
    """A report query the report cannot take."""
    return ApiError(400, "invalid_report_query", message, details)


def report_day(name: str, value: str) -> date:
    """`from` or `to`: a date YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_query(f"{name} must be a date YYYY-MM-DD", parameter=name,
                        given=value) from None


def report_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise bad_query("format is json or csv", parameter="format", given=fmt)
    return fmt


@dataclass(frozen=True, slots=True)
class Period:
    """A report's period as asked: a `year`, or `start`/`end` (both inclusive, either may be
    open), or nothing (all time)."""

    year: int | None = None
    start: date | None = None
    end: date | None = None

    def bounds(self) -> tuple[date | None, date | None]:
        """[from, until), or 400 for a period that is not one."""
        if self.year is not None:
            if self.start is not None or self.end is not None:
                raise bad_query("give year, or from/to, not both")
            if not 1 <= self.year <= 9999:
                raise bad_query("year must be four digits", parameter="year",
                                given=f"{self.year:04d}")
            return (date(self.year, 1, 1),
                    date(self.year + 1, 1, 1) if self.year != 9999 else None)
        if self.start and self.end and self.end < self.start:
            raise bad_query("to lies before from")
        return self.start, (self.end + timedelta(days=1)
                            if self.end and self.end < date.max else None)


def read_period(q: Query) -> Period:
    """The period of a query's `year`, `from` and `to` (as given: an empty value is not a
    year or a date)."""
    year, start, end = q.raw("year"), q.raw("from"), q.raw("to")
    number = None
    if year is not None:
        number = ascii_int(year, max_digits=4) if len(year) == 4 else None
        if not number:  # None, or 0000
            raise bad_query("year must be four digits", parameter="year", given=year)
    return Period(number, None if start is None else report_day("from", start),
                  None if end is None else report_day("to", end))


def require_scope(principal: Principal, role_of_party: str, tax_id: str) -> None:
    """Reports are for admins, and for audit keys only on the tax ids in their scope."""
    if not principal.sees_tax_id(tax_id):
        raise ApiError(403, "not_in_scope", "this key may only report on its own tax ids",
                       {role_of_party: tax_id})
