"""`scan_buyer_invoices`, on every backend: one buyer's invoices in an issue-date range, in
(issue date, document id) order, paged after a position, never anyone else's."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from indexer.keys import CnKey, VnKey
from indexer.model import Amounts, Invoice, Lifecycle
from indexer.store import InvoiceStore, StoredPackage
from indexer.store.protocol import IssuedPosition
from indexer.store.sqlite import open_sqlite_store
from tests.factories import CN_CODE_E, SELLER, SELLER_2

VN_TZ = timezone(timedelta(hours=7))
CN_TZ = timezone(timedelta(hours=8))
BUYER = "0314409058-002"
OTHER_BUYER = "0312345673"
CN_BUYER = "91310115MA1K3XYZ2P"
MAY = (date(2022, 5, 1), date(2022, 6, 1))


def vn(number: int, at: datetime, *, seller: str = SELLER, buyer: str | None = BUYER,
       lifecycle: Lifecycle = Lifecycle.ISSUED) -> Invoice:
    return Invoice(key=VnKey(seller, "1", "C22TAA", number), issued_at=at, currency="VND",
                   amounts=Amounts(Decimal(100), Decimal(10), Decimal(110)),
                   package_id="PKG-B", seller_tax_id=seller, buyer_tax_id=buyer,
                   lifecycle=lifecycle)


def cn(number: str, at: datetime, *, buyer: str = CN_BUYER) -> Invoice:
    code = None if len(number) == 20 else CN_CODE_E
    return Invoice(key=CnKey(code, number), issued_at=at, currency="CNY",
                   amounts=Amounts(Decimal("100.00"), Decimal("6.00"), Decimal("106.00")),
                   package_id="PKG-B", seller_tax_id="91110108MA01ABCD1X", buyer_tax_id=buyer,
                   type_code="10" if code else "32")


def vn_at(day: int, hour: int = 9, month: int = 5) -> datetime:
    return datetime(2022, month, day, hour, tzinfo=VN_TZ)


# Local issue dates: 00:30 on 1 May in Vietnam is still 30 April in UTC, and belongs to May.
MAY_FIRST_EARLY = vn(7, vn_at(1, 0).replace(minute=30))
IN_MAY = [
    MAY_FIRST_EARLY,
    vn(3, vn_at(2)), vn(12, vn_at(2)), vn(4, vn_at(2, 23), seller=SELLER_2),  # same day: by id
    vn(5, vn_at(15), lifecycle=Lifecycle.CANCELLED),
    vn(6, vn_at(31, 23)),
]
OUTSIDE = [
    vn(1, vn_at(30, 23, month=4)),  # the day before the range
    vn(2, vn_at(1, 0, month=6)),  # the first day after it (until is exclusive)
    vn(8, vn_at(10), buyer=OTHER_BUYER),  # another buyer
    vn(9, vn_at(10), buyer=None),  # no buyer at all
]
CN_MAY = [cn("00000101", datetime(2022, 5, 3, 10, tzinfo=CN_TZ)),
          cn("24442000000014209621", datetime(2022, 5, 3, 11, tzinfo=CN_TZ))]


def ordered(invoices: list[Invoice]) -> list[str]:
    return [i.doc_id for i in sorted(invoices, key=IssuedPosition.of)]


async def loaded(store: InvoiceStore) -> InvoiceStore:
    package = StoredPackage("PKG-B", "0101300842", "d" * 64,
                            datetime(2026, 1, 1, tzinfo=VN_TZ), {"package_id": "PKG-B"})
    await store.commit_package(package, IN_MAY + OUTSIDE + CN_MAY, [])
    return store


async def scan_all(store: InvoiceStore, buyer: str, issued_from: date, issued_until: date,
                   limit: int) -> list[str]:
    seen: list[str] = []
    after: IssuedPosition | None = None
    while page := await store.scan_buyer_invoices(buyer, issued_from, issued_until,
                                                  after=after, limit=limit):
        assert len(page) <= limit
        seen += [i.doc_id for i in page]
        after = IssuedPosition.of(page[-1])
    return seen


async def test_a_buyers_invoices_in_the_range_in_date_then_id_order(
        store: InvoiceStore) -> None:
    await loaded(store)
    page = await store.scan_buyer_invoices(BUYER, *MAY)
    assert [i.doc_id for i in page] == ordered(IN_MAY)
    assert [i.doc_id for i in page] == [
        f"vn:{SELLER}:1:C22TAA:7", f"vn:{SELLER}:1:C22TAA:12", f"vn:{SELLER}:1:C22TAA:3",
        f"vn:{SELLER_2}:1:C22TAA:4", f"vn:{SELLER}:1:C22TAA:5", f"vn:{SELLER}:1:C22TAA:6"]
    assert page == [IN_MAY[0], IN_MAY[2], IN_MAY[1], *IN_MAY[3:]]  # whole invoices
    assert page[4].lifecycle is Lifecycle.CANCELLED  # every state is listed


async def test_pages_of_any_size_give_the_same_scan(store: InvoiceStore) -> None:
    await loaded(store)
    for limit in (1, 2, 5, 1000):
        assert await scan_all(store, BUYER, *MAY, limit=limit) == ordered(IN_MAY), limit


async def test_range_bounds_and_other_buyers(store: InvoiceStore) -> None:
    await loaded(store)
    assert await scan_all(store, BUYER, date(2022, 4, 30), date(2022, 6, 2), 2) == ordered(
        [*IN_MAY, OUTSIDE[0], OUTSIDE[1]])
    assert await scan_all(store, BUYER, date(2022, 5, 2), date(2022, 5, 3), 1) == ordered(
        IN_MAY[1:4])
    assert await scan_all(store, OTHER_BUYER, *MAY, 10) == [OUTSIDE[2].doc_id]
    assert await scan_all(store, CN_BUYER, *MAY, 1) == ordered(CN_MAY)
    assert await store.scan_buyer_invoices("0100109106", *MAY) == []
    assert await store.scan_buyer_invoices(BUYER, date(2022, 7, 1), date(2022, 8, 1)) == []


async def test_a_position_before_the_range_starts_at_the_range(store: InvoiceStore) -> None:
    await loaded(store)
    early = IssuedPosition(date(2022, 1, 1), "vn:zzz")
    page = await store.scan_buyer_invoices(BUYER, *MAY, after=early)
    assert [i.doc_id for i in page] == ordered(IN_MAY)
    last = IssuedPosition.of(IN_MAY[-1])
    assert await store.scan_buyer_invoices(BUYER, *MAY, after=last) == []


async def test_sqlite_walks_the_buyer_index_without_sorting(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "plan.sqlite3") as store:
        plan = " ".join(str(row) for row in await store._writer.execute_fetchall(
            "EXPLAIN QUERY PLAN " + store._BUYER_SCAN, (BUYER, "2022-05-01", "", "2022-06-01", 9)))
    assert "invoices_buyer" in plan
    assert "TEMP B-TREE" not in plan
