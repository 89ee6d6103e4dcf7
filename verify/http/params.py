"""Query parameters, read in one place for every route that takes them.

The policy, the same on every route:
- a name the route does not know is refused (`unknown_parameter`), so a typo never turns
  into a silently weaker check or a wider answer;
- a name given twice is refused (`repeated_parameter`): which one counts would be a guess;
- a value is stripped; one longer than its route allows, or holding a control character or
  a lone surrogate, is refused (`invalid_parameter`) before any parser sees it;
- integers are ASCII digits within stated bounds (`indexer.text.parse_bounded_int`), never
  `str.isdigit()` + `int()`, which accept `²` and `①` and then fail on them;
- an empty value means "not given" (its default), whatever the parameter's kind.

Every refusal is a `verify.http.errors.QueryError` (an `ApiError`), answered as 400 with
`details.parameter` (or `details.parameters`) naming what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

from multidict import MultiMapping

from indexer.text import clean_text, parse_bounded_int, text_problem
from verify.http.errors import QueryError

#: What `indexer.text.text_problem` refuses (control characters, lone surrogates), found in
#: one search; that function then words the reason.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: No query parameter of ours needs more; a callback URL is the longest (2,048).
MAX_VALUE_LENGTH = 2048

E = TypeVar("E", bound=Enum)


def invalid(name: str, message: str, **details: Any) -> QueryError:
    """The one error for a parameter whose value cannot be used."""
    return QueryError("invalid_parameter", message, parameter=name, **details)


def check_names(names: Iterable[str], allowed: Collection[str]) -> None:
    """Unknown names, then repeated ones, refused; `names` in the order given."""
    given = list(names)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise QueryError("unknown_parameter", "unknown query parameter(s)",
                         parameters=unknown, allowed=sorted(allowed))
    repeated = sorted({n for n in given if given.count(n) > 1})
    if repeated:
        raise QueryError("repeated_parameter", "each parameter may be given once",
                         parameters=repeated)


@dataclass(frozen=True, slots=True)
class Query:
    """The checked parameters of one request: each name once, each value stripped and free
    of control characters and lone surrogates."""

    values: dict[str, str] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def raw(self, name: str) -> str | None:
        """The value as given (stripped), or None when absent."""
        return self.values.get(name)

    def text(self, name: str, *, max_len: int = MAX_VALUE_LENGTH) -> str | None:
        """Optional text: None when absent or empty; 400 when longer than `max_len`."""
        value = self.values.get(name)
        if not value:
            return None
        cleaned = clean_text(value, max_len=max_len)
        if cleaned is None:
            raise invalid(name, f"{name} must be text of at most {max_len} characters")
        return cleaned

    def integer(self, name: str, *, low: int, high: int, default: int) -> int:
        """An ASCII whole number within [low, high]; `default` when absent or empty."""
        value = self.values.get(name)
        if not value:
            return default
        try:
            return parse_bounded_int(value, low=low, high=high, name=name)
        except ValueError as exc:
            raise invalid(name, str(exc)) from None

    def choice(self, name: str, choices: type[E]) -> E | None:
        """One of an enum's values; None when absent or empty."""
        value = self.values.get(name)
        if not value:
            return None
        try:
            return choices(value)
        except ValueError:
            allowed = ", ".join(str(c.value) for c in choices)
            raise invalid(name, f"{name} must be one of {allowed}") from None

    def day(self, name: str) -> date | None:
        """A calendar date YYYY-MM-DD; None when absent or empty."""
        value = self.values.get(name)
        if not value:
            return None
        try:
            if not _DAY.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise invalid(name, f"{name} must be a date YYYY-MM-DD") from None

    def instant(self, name: str) -> datetime | None:
        """An ISO 8601 date-time with a UTC offset (`Z` allowed); None when absent or empty."""
        value = self.values.get(name)
        if not value:
            return None
        try:
            if not value.isascii() or len(value) > 40:
                raise ValueError(value)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(name, f"{name} must be an ISO 8601 date-time with a UTC offset "
                          "(e.g. Z or +07:00)") from None
        if moment.tzinfo is None:
            raise invalid(name, f"{name} needs a UTC offset (e.g. Z or +07:00)")
        return moment


def read_query(query: MultiMapping[str], allowed: Collection[str], *,
               max_len: int = MAX_VALUE_LENGTH) -> Query:
    """The request's parameters checked against the route's `allowed` names: unknown or
    repeated names, and values longer than `max_len` or not storable text, are 400. On the
    lookup path: about 1 us for four parameters (one set and one regex search per value in
    the common case)."""
    pairs = list(query.items())  # keys() lists a repeated name once
    names = {name for name, _ in pairs}
    if len(names) != len(pairs) or not names.issubset(allowed):
        check_names([name for name, _ in pairs], allowed)
    values: dict[str, str] = {}
    for name, raw in pairs:
        value = raw.strip()
        if len(value) > max_len:
            raise invalid(name, f"{name} must be at most {max_len} characters")
        if _NOT_TEXT.search(value) is not None:
            raise invalid(name, f"{name} {text_problem(value) or 'is not text'}")
        values[name] = value
    return Query(values)
