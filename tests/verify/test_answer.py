"""The answer builder: a summary reused for the same invoice object is never shared."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from fallback.lookup.answer import Summaries, invoice_summary, utc_stamp
from indexer.keys import VnKey
from indexer.model import Amounts, Invoice, Kind

SELLER = "0100109106"


def invoice(number: int, **changes: object) -> Invoice:
    base = Invoice(key=VnKey(SELLER, "1", "C22TAA", number),
                   issued_at=datetime(2022, 5, 15, 9, tzinfo=timezone(timedelta(hours=7))),
                   currency="VND", amounts=Amounts(Decimal("1000.50"), Decimal(100),
                                                   Decimal("1100.50")),
                   package_id="PKG-1", seller_tax_id=SELLER)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_summary_is_a_fresh_copy_each_time() -> None:
    replacement = invoice(2, kind=Kind.REPLACEMENT, original=VnKey(SELLER, "1", "C22TAA", 1))
    memo = Summaries()
    first = invoice_summary(replacement, memo)
    assert first["total_amount"] == "1100.5"
    assert first["issued_on"] == "2022-05-15"
    assert first["original"] == {"seller_tax_id": SELLER, "template": "1",
                                 "series": "C22TAA", "number": 1}
    first["buyer_name"] = "changed by a caller"
    first["original"]["number"] = 99
    again = invoice_summary(replacement, memo)
    assert again["buyer_name"] is None
    assert again["original"]["number"] == 1


def test_equal_invoices_that_are_other_objects_get_their_own_summary() -> None:
    one = invoice(3)
    other = dataclasses.replace(one, buyer_name="Người mua")
    memo = Summaries()
    assert invoice_summary(one, memo)["buyer_name"] is None
    assert invoice_summary(other, memo)["buyer_name"] == "Người mua"


def test_utc_stamps_from_any_zone() -> None:
    moment = datetime(2026, 11, 22, 9, 10, 0, 123456, tzinfo=timezone(timedelta(hours=7)))
    assert utc_stamp(moment) == "2026-11-22T02:10:00.123456Z"
    assert utc_stamp(moment.astimezone(UTC)) == "2026-11-22T02:10:00.123456Z"
