"""`watch=true`: the query parameter that makes a lookup (`GET /invoices/lookup`) or a batch
(`POST /verify/batch`) watch the invoice it answered (docs/watches.md), read by the
project's parameter policy (`verify.http.params`: once at most, a known value or 400)."""

from __future__ import annotations

from multidict import MultiDict, MultiMapping

from verify.http.params import invalid, read_query

WATCH = "watch"
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0", ""})


def split_watch(query: MultiMapping[str]) -> tuple[bool, MultiMapping[str]]:
    """Whether the answered invoice is to be watched, and the other parameters for the
    route's own reading. Without the parameter (the usual case): one membership test."""
    if WATCH not in query:
        return False, query
    given = read_query(MultiDict((k, v) for k, v in query.items() if k == WATCH), {WATCH},
                       max_len=8).values[WATCH].lower()
    if given not in _TRUE | _FALSE:
        raise invalid(WATCH, "watch must be true or false")
    return given in _TRUE, MultiDict((k, v) for k, v in query.items() if k != WATCH)
