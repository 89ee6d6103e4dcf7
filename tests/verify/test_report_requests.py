"""A report's request is built from typed values (the command line's options) or read from a
query through `verify.http.params` (the one reader of query parameters), then checked once:
both ways give the same request."""

from __future__ import annotations

from datetime import date

import pytest
from multidict import MultiDict

from tests.factories import SELLER
from verify.http.errors import ApiError
from verify.reports.ledger import ledger_request, read_ledger_query
from verify.reports.missing import missing_request, read_missing_query
from verify.reports.query import Period

BUYER = "0102671977"


def test_a_query_and_typed_options_give_the_same_request() -> None:
    assert read_missing_query(MultiDict({"seller_tax_id": SELLER, "series": "C22TAA",
                                         "year": "2022", "format": "csv"})) == \
        missing_request(SELLER, series="C22TAA", period=Period(2022), fmt="csv")
    assert read_missing_query(MultiDict({"seller_tax_id": SELLER, "from": "2022-05-01"})) \
        == missing_request(SELLER, period=Period(start=date(2022, 5, 1)))
    assert read_ledger_query(MultiDict({"buyer_tax_id": BUYER, "from": "2022-05-01",
                                        "to": "2022-05-31"})) == \
        ledger_request(BUYER, period=Period(start=date(2022, 5, 1), end=date(2022, 5, 31)))


@pytest.mark.parametrize(("period", "message"), [
    (Period(0), "four digits"), (Period(10_000), "four digits"),
    (Period(2022, start=date(2022, 1, 1)), "not both"),
    (Period(start=date(2022, 2, 1), end=date(2022, 1, 1)), "before from"),
])
def test_typed_periods_are_checked_as_queries_are(period: Period, message: str) -> None:
    for build in (lambda: missing_request(SELLER, period=period),
                  lambda: ledger_request(BUYER, period=period)):
        with pytest.raises(ApiError, match=message) as raised:
            build()
        assert (raised.value.status, raised.value.code) == (400, "invalid_report_query")


def test_report_queries_are_read_by_the_one_reader() -> None:
    """Names, repetitions and values as on every route: stripped, bounded, text."""
    request = read_missing_query(MultiDict({"seller_tax_id": f" {SELLER} ",
                                            "template": " 1 "}))
    assert (request.scope.seller_tax_id, request.scope.template) == (SELLER, "1")
    for query, code in ((MultiDict([("seller_tax_id", SELLER), ("year", "2022"),
                                    ("year", "2023")]), "repeated_parameter"),
                        (MultiDict({"seller_tax_id": SELLER, "series": "C22\x00AA"}),
                         "invalid_parameter"),
                        (MultiDict({"buyer_tax_id": BUYER, "year": "2022",
                                    "seller_tax_id": SELLER}), "unknown_parameter")):
        with pytest.raises(ApiError) as raised:
            (read_ledger_query if "buyer_tax_id" in query else read_missing_query)(query)
        assert (raised.value.status, raised.value.code) == (400, code)
