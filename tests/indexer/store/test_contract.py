"""The store contract: every backend in `STORE_BACKENDS` must pass all of it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from indexer.keys import CnKey, VnKey
from indexer.model import Amounts, Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.store import InvoiceStore, PackageExistsError, StoredPackage
from indexer.store.protocol import DuplicateInvoiceError
from tests.factories import SELLER, authority_code

NOW = datetime(2026, 11, 23, 2, 10, tzinfo=UTC)


def vn(number: int, **over: object) -> Invoice:
    inv = Invoice(
        key=VnKey(SELLER, "1", "C22TAA", number),
        issued_at=datetime(2022, 5, 15, 9, 30, tzinfo=timezone(timedelta(hours=7))),
        currency="VND",
        amounts=Amounts(Decimal(1_000_000), Decimal(100_000), Decimal("1100000.5")),
        package_id="PKG-1", seller_tax_id=SELLER, seller_name="Công ty Thử nghiệm",
        buyer_tax_id="0102671977", authority_code=authority_code(number),
    )
    return dataclasses.replace(inv, **over)  # type: ignore[arg-type]


def cn(code: str | None, number: str) -> Invoice:
    return Invoice(
        key=CnKey(code, number),
        issued_at=datetime(2024, 11, 14, 10, tzinfo=timezone(timedelta(hours=8))),
        currency="CNY", amounts=Amounts(Decimal("100.00"), Decimal("6.00"), Decimal("106.00")),
        package_id="PKG-1", type_code="10" if code else "32",
        check_code="12345678901234567890" if code else None,
    )


def pkg(package_id: str = "PKG-1", **notice: object) -> StoredPackage:
    return StoredPackage(package_id, "0101300842", "d" * 64, NOW, {"package_id": package_id,
                                                                   **notice})


async def test_empty_store_finds_nothing(store: InvoiceStore) -> None:
    await store.ping()
    assert await store.get_invoice("vn:0100109106:1:C22TAA:1") is None
    assert await store.get_invoices(["x", "y"]) == {}
    assert await store.find_by_authority_code(authority_code(1)) is None
    assert await store.existing_authority_codes([authority_code(1)]) == set()
    assert await store.get_package("PKG-1") is None
    assert await store.count_invoices() == 0


async def test_committed_invoices_round_trip_exactly(store: InvoiceStore) -> None:
    invoices = [vn(1), vn(2, buyer_name="Người mua"), cn("013002200211", "81532753"),
                cn(None, "23442000000014209621")]
    await store.commit_package(pkg(), invoices, [])
    for invoice in invoices:
        assert await store.get_invoice(invoice.doc_id) == invoice
    got = await store.get_invoices([i.doc_id for i in invoices] + ["vn:missing"])
    assert got == {i.doc_id: i for i in invoices}
    assert await store.count_invoices() == 4
    stored = await store.get_invoice(invoices[0].doc_id)
    assert stored is not None
    assert stored.amounts.total == Decimal("1100000.5")
    assert stored.issued_at.utcoffset() == timedelta(hours=7)


async def test_authority_code_lookup(store: InvoiceStore) -> None:
    await store.commit_package(pkg(), [vn(1), vn(2)], [])
    found = await store.find_by_authority_code(authority_code(2))
    assert found is not None
    assert found.key == VnKey(SELLER, "1", "C22TAA", 2)
    assert await store.existing_authority_codes(
        [authority_code(1), authority_code(3)]) == {authority_code(1)}


async def test_package_notice_is_kept_and_id_is_unique(store: InvoiceStore) -> None:
    await store.commit_package(pkg(result="accepted"), [vn(1)], [])
    stored = await store.get_package("PKG-1")
    assert stored is not None
    assert stored.notice == {"package_id": "PKG-1", "result": "accepted"}
    assert stored.received_at == NOW
    assert stored.digest == "d" * 64
    with pytest.raises(PackageExistsError):
        await store.commit_package(pkg(), [vn(2)], [])
    assert await store.get_invoice(vn(2).doc_id) is None


async def test_commit_is_all_or_nothing_on_duplicate_key(store: InvoiceStore) -> None:
    await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    with pytest.raises(DuplicateInvoiceError):
        await store.commit_package(pkg("PKG-2"), [vn(2), vn(1)], [])
    assert await store.get_package("PKG-2") is None
    assert await store.get_invoice(vn(2).doc_id) is None


async def test_commit_is_all_or_nothing_on_duplicate_authority_code(store: InvoiceStore) -> None:
    await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    with pytest.raises(DuplicateInvoiceError):
        await store.commit_package(pkg("PKG-2"), [vn(5, authority_code=authority_code(1))], [])
    assert await store.get_invoice(vn(5).doc_id) is None


async def test_changed_invoices_overwrite_lifecycle_and_relations(store: InvoiceStore) -> None:
    original = vn(1)
    await store.commit_package(pkg("PKG-1"), [original], [])
    replacement = vn(2, kind=Kind.REPLACEMENT, original=original.key)
    replaced = dataclasses.replace(
        original, lifecycle=Lifecycle.REPLACED,
        relations=(Relation(RelationKind.REPLACED_BY, key=replacement.key, at=NOW),))
    await store.commit_package(pkg("PKG-2"), [replacement], [replaced])
    assert await store.get_invoice(original.doc_id) == replaced
    assert await store.get_invoice(replacement.doc_id) == replacement


async def test_cancel_relation_keeps_notice_and_reason(store: InvoiceStore) -> None:
    original = vn(1)
    await store.commit_package(pkg("PKG-1"), [original], [])
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", reason="sai người mua", at=NOW),))
    await store.commit_package(pkg("PKG-2"), [], [cancelled])
    assert await store.get_invoice(original.doc_id) == cancelled


async def test_refused_package_leaves_no_authority_code_taken(store: InvoiceStore) -> None:
    await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    with pytest.raises(DuplicateInvoiceError):
        await store.commit_package(pkg("PKG-2"), [vn(2), vn(3), vn(1)], [])
    assert await store.existing_authority_codes([authority_code(2), authority_code(3)]) == set()
    assert await store.find_by_authority_code(authority_code(2)) is None


async def test_invoices_of_a_refused_package_can_be_committed_later(store: InvoiceStore) -> None:
    await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    with pytest.raises(DuplicateInvoiceError):
        await store.commit_package(pkg("PKG-2"), [vn(2), vn(1)], [])
    await store.commit_package(pkg("PKG-3"), [vn(2)], [])
    assert await store.get_invoice(vn(2).doc_id) == vn(2)
    assert await store.existing_authority_codes([authority_code(2)]) == {authority_code(2)}
    assert await store.count_invoices() == 2


async def test_scan_by_issue_date_pages_by_doc_id(store: InvoiceStore) -> None:
    vn7 = timezone(timedelta(hours=7))
    dates = {1: datetime(2022, 4, 30, 23, 59, tzinfo=vn7), 2: datetime(2022, 5, 1, tzinfo=vn7),
             3: datetime(2022, 5, 15, 12, tzinfo=vn7), 4: datetime(2022, 5, 31, 23, 59, tzinfo=vn7),
             5: datetime(2022, 6, 1, tzinfo=vn7), 10: datetime(2022, 5, 20, tzinfo=vn7)}
    await store.commit_package(pkg(), [vn(n, issued_at=at) for n, at in dates.items()], [])
    may, june = date(2022, 5, 1), date(2022, 6, 1)
    first = await store.scan_invoices(may, june, limit=2)
    assert [i.doc_id for i in first] == [vn(10).doc_id, vn(2).doc_id]  # doc-id order
    rest = await store.scan_invoices(may, june, after=first[-1].doc_id, limit=2)
    assert [i.doc_id for i in rest] == [vn(3).doc_id, vn(4).doc_id]
    assert await store.scan_invoices(may, june, after=rest[-1].doc_id, limit=2) == []
    assert await store.scan_invoices(date(2023, 1, 1), date(2023, 2, 1)) == []
