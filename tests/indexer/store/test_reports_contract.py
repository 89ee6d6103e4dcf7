"""The numbering-gap contract: `numbering_runs` and the report built on it, on every backend.

Known data: one seller with a series holed at its start, middle and end and cancellations,
a complete series, the same series under a second template, Chinese invoices under two codes
and one 数电 invoice; a second seller in the same series and code that must not leak in.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from indexer.keys import CnKey, VnKey
from indexer.model import Amounts, Invoice, Lifecycle
from indexer.reports import numbering_gaps
from indexer.store import InvoiceStore, StoredPackage
from indexer.store.numbering_reports import NumberingScope, NumberRun, SequenceKey
from tests.factories import CN_CODE_E, CN_CODE_SPECIAL, SELLER, SELLER_2

VN_TZ = timezone(timedelta(hours=7))
CN_TZ = timezone(timedelta(hours=8))
CN_SELLER = "91110108MA01ABCD1X"
CN_OTHER = "91310115MA1K3XYZ2P"
#: C22TAA of template 1: 1-2 missing (start), 7-8 and 12 (middle), 19 (end, before 20).
HOLED = [3, 4, 5, 6, 9, 10, 11, 13, 14, 15, 16, 17, 18, 20]
CANCELLED = {5, 6, 9, 15}


def vn(number: int, *, seller: str = SELLER, template: str = "1", series: str = "C22TAA",
       cancelled: bool = False) -> Invoice:
    """Issued on day `number` of 2022, so a date range selects by number."""
    return Invoice(
        key=VnKey(seller, template, series, number),
        issued_at=datetime(2022, 1, 1, 9, tzinfo=VN_TZ) + timedelta(days=number - 1),
        currency="VND", amounts=Amounts(Decimal(100), Decimal(10), Decimal(110)),
        package_id="PKG-R", seller_tax_id=seller,
        lifecycle=Lifecycle.CANCELLED if cancelled else Lifecycle.ISSUED)


def cn(code: str | None, number: str, *, seller: str = CN_SELLER,
       cancelled: bool = False) -> Invoice:
    return Invoice(
        key=CnKey(code, number), issued_at=datetime(2024, 11, 14, 10, tzinfo=CN_TZ),
        currency="CNY", amounts=Amounts(Decimal("100.00"), Decimal("6.00"), Decimal("106.00")),
        package_id="PKG-R", seller_tax_id=seller, type_code="10" if code else "32",
        lifecycle=Lifecycle.CANCELLED if cancelled else Lifecycle.ISSUED)


DATA = (
    [vn(n, cancelled=n in CANCELLED) for n in HOLED]
    + [vn(n, series="C22TBB") for n in range(1, 6)]
    + [vn(n, template="2") for n in (2, 4)]
    + [vn(n, seller=SELLER_2) for n in (1, 2, 7, 8, 12, 19)]
    + [cn(CN_CODE_E, f"{n:08d}", cancelled=n == 106) for n in (101, 102, 105, 106)]
    + [cn(CN_CODE_SPECIAL, "00000001"), cn(None, "24442000000014209621")]
    + [cn(CN_CODE_E, "00000103", seller=CN_OTHER), cn(CN_CODE_E, "00000104", seller=CN_OTHER)]
)

SEQ_1 = SequenceKey("vn", "1", "C22TAA")


async def loaded(store: InvoiceStore) -> InvoiceStore:
    package = StoredPackage("PKG-R", "0101300842", "d" * 64,
                            datetime(2026, 1, 1, tzinfo=VN_TZ), {"package_id": "PKG-R"})
    await store.commit_package(package, DATA, [])
    return store


async def runs(store: InvoiceStore, scope: NumberingScope, page_size: int = 5_000
               ) -> list[NumberRun]:
    return [run async for page in store.numbering_runs(scope, page_size=page_size)
            for run in page]


async def report(store: InvoiceStore, scope: NumberingScope,
                 page_size: int = 5_000) -> list[dict[str, object]]:
    return [gaps.as_dict() async for gaps in numbering_gaps(store, scope, page_size=page_size)]


def vn_row(template: str, series: str, first: int, last: int, issued: int,
           missing: list[list[int]], cancelled: list[list[int]]) -> dict[str, object]:
    return {"scheme": "vn", "seller_tax_id": SELLER, "template": template, "series": series,
            "invoice_code": None, "expected_first": 1, "first": first, "last": last,
            "issued": issued, "missing_count": sum(b - a + 1 for a, b in missing),
            "missing": missing, "cancelled_count": sum(b - a + 1 for a, b in cancelled),
            "cancelled": cancelled}


HOLED_ROW = vn_row("1", "C22TAA", 3, 20, 14, [[1, 2], [7, 8], [12, 12], [19, 19]],
                   [[5, 6], [9, 9], [15, 15]])
COMPLETE_ROW = vn_row("1", "C22TBB", 1, 5, 5, [], [])
TEMPLATE_2_ROW = vn_row("2", "C22TAA", 2, 4, 2, [[1, 1], [3, 3]], [])


async def test_runs_are_consecutive_numbers_of_one_state(store: InvoiceStore) -> None:
    await loaded(store)
    got = await runs(store, NumberingScope(SELLER, template="1", series="C22TAA"))
    assert [(r.first, r.last, r.cancelled) for r in got] == [
        (3, 4, False), (5, 6, True), (9, 9, True), (10, 11, False), (13, 14, False),
        (15, 15, True), (16, 18, False), (20, 20, False)]
    assert {r.sequence for r in got} == {SEQ_1}


async def test_runs_page_without_changing_the_answer(store: InvoiceStore) -> None:
    await loaded(store)
    scope = NumberingScope(SELLER)
    whole = await runs(store, scope)
    assert await runs(store, scope, page_size=1) == whole
    assert await runs(store, scope, page_size=3) == whole
    pages = [page async for page in store.numbering_runs(scope, page_size=2)]
    assert len(pages) > 1


async def test_seller_report_covers_each_series_and_template(store: InvoiceStore) -> None:
    await loaded(store)
    assert await report(store, NumberingScope(SELLER)) == [HOLED_ROW, COMPLETE_ROW,
                                                           TEMPLATE_2_ROW]
    assert await report(store, NumberingScope(SELLER), page_size=1) == [
        HOLED_ROW, COMPLETE_ROW, TEMPLATE_2_ROW]


async def test_template_and_series_narrow_the_report(store: InvoiceStore) -> None:
    await loaded(store)
    assert await report(store, NumberingScope(SELLER, template="1")) == [HOLED_ROW,
                                                                         COMPLETE_ROW]
    assert await report(store, NumberingScope(SELLER, series="C22TAA")) == [HOLED_ROW,
                                                                           TEMPLATE_2_ROW]
    assert await report(store, NumberingScope(SELLER, template="3")) == []


async def test_other_sellers_never_fill_or_leak_into_a_report(store: InvoiceStore) -> None:
    await loaded(store)
    other = await report(store, NumberingScope(SELLER_2))
    assert other == [{**vn_row("1", "C22TAA", 1, 19, 6, [[3, 6], [9, 11], [13, 18]], []),
                      "seller_tax_id": SELLER_2}]
    assert await report(store, NumberingScope("0312345673")) == []


async def test_year_scope_keeps_the_leading_gap_a_later_start_drops_it(
        store: InvoiceStore) -> None:
    await loaded(store)
    year = NumberingScope(SELLER, template="1", series="C22TAA",
                          issued_from=date(2022, 1, 1), issued_until=date(2023, 1, 1))
    assert await report(store, year) == [HOLED_ROW]
    assert await report(store, NumberingScope(SELLER, issued_from=date(2023, 1, 1))) == []
    # Issued on day n of 2022: days 5..16 hold numbers 5..16, the range starts mid-series.
    window = NumberingScope(SELLER, template="1", series="C22TAA",
                            issued_from=date(2022, 1, 5), issued_until=date(2022, 1, 17))
    assert await report(store, window) == [{
        **vn_row("1", "C22TAA", 5, 16, 9, [[7, 8], [12, 12]], [[5, 6], [9, 9], [15, 15]]),
        "expected_first": 5}]


async def test_chinese_codes_gap_between_first_and_last_seen(store: InvoiceStore) -> None:
    await loaded(store)
    rows = await report(store, NumberingScope(CN_SELLER))
    assert rows == [
        {"scheme": "cn", "seller_tax_id": CN_SELLER, "template": None, "series": None,
         "invoice_code": CN_CODE_E, "expected_first": 101, "first": 101, "last": 106,
         "issued": 4, "missing_count": 2, "missing": [[103, 104]], "cancelled_count": 1,
         "cancelled": [[106, 106]]},
        {"scheme": "cn", "seller_tax_id": CN_SELLER, "template": None, "series": None,
         "invoice_code": CN_CODE_SPECIAL, "expected_first": 1, "first": 1, "last": 1,
         "issued": 1, "missing_count": 0, "missing": [], "cancelled_count": 0,
         "cancelled": []}]
    assert await report(store, NumberingScope(CN_SELLER, invoice_code=CN_CODE_SPECIAL)) == [
        rows[1]]
    # A template or series names Vietnamese sequences only.
    assert await report(store, NumberingScope(CN_SELLER, template="1")) == []
    # An invoice code names Chinese sequences only.
    assert await report(store, NumberingScope(SELLER, invoice_code=CN_CODE_E)) == []
