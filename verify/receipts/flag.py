"""`receipt=true`: the query parameter that asks for a receipt with an answer
(`GET /invoices/lookup`, `POST /verify/qr`, `POST /verify/qr-text`), read here once, by the
project's parameter policy (`verify.http.params`: once at most, a known value or 400)."""

from __future__ import annotations

from multidict import MultiDict, MultiMapping

from verify.http.errors import QueryError
from verify.http.params import check_names, invalid, read_query

RECEIPT = "receipt"
_VALUES = {"true": True, "false": False, "1": True, "0": False, "": False}


def _value(raw: str) -> bool:
    value = _VALUES.get(raw.strip().lower())
    if value is None:
        raise invalid(RECEIPT, "receipt must be true or false")
    return value


def split_receipt(query: MultiMapping[str]) -> tuple[bool, MultiMapping[str]]:
    """Whether a receipt was asked for, and the other parameters for the route's own
    reading. A lookup without the parameter (the usual case) costs one membership test."""
    if RECEIPT not in query:
        return False, query
    given = query.getall(RECEIPT)
    if len(given) > 1:
        raise QueryError(
            "repeated_parameter", "each parameter may be given once", parameters=[RECEIPT]
        )
    rest = MultiDict(query)
    del rest[RECEIPT]
    return _value(given[0]), rest


def receipt_only(query: MultiMapping[str]) -> bool:
    """For routes whose only query parameter is `receipt` (the QR endpoints)."""
    if not query:
        return False
    check_names(list(query), {RECEIPT})
    return _value(read_query(query, {RECEIPT}, max_len=8).values.get(RECEIPT, ""))
