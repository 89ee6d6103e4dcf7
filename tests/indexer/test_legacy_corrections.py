"""Corrections of invoices this index never holds (issue 17, item 5).

vn-einvoice §5.6: `LHDCLQuan`, the kind of the related invoice, is "`1` Decree-123 e-invoice,
`2` e-invoice with GDT authentication code under Decisions 1209/2015 & 2660/2016, `3` other
invoices under Decrees 51/2010 & 04/2014, `4` printed invoice under Decree 123"; §1.1: "In
*related-invoice* and error-notice fields [KHMSHDon] may be up to 11 chars because legacy
invoices (Decree 51/2010, 04/2014) used `01GTKT0/001`-style templates". Such an original is
kept as written and linked one way, marked external.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from indexer.intake import Intake
from indexer.keys import VnKey
from indexer.model import Kind, RelationKind
from indexer.package import package_from_json
from indexer.rules import RuleConfig
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from indexer.validate import is_external, validate_invoice
from indexer.vn_xml import parse_xml_package
from tests.factories import CN_CODE_E, SELLER, SELLER_2, cn_invoice, package, vn_invoice
from tests.xml_factories import xml_package

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CFG = RuleConfig()
LEGACY = {
    "seller_tax_id": SELLER,
    "template": "01GTKT0/001",
    "series": "AA/21E",
    "number": "0000123",
}


def correction(kind: str = "replacement", **original: Any) -> dict[str, Any]:
    return vn_invoice(2, kind=kind, original={**LEGACY, "related_kind": "3", **original})


def rules(raw: dict[str, Any]) -> list[tuple[str, str | None]]:
    _, out = validate_invoice(raw, CFG, package_id="P", now=NOW)
    return [(v.code, v.field) for v in out]


@pytest.mark.parametrize("related_kind", ["2", "3", "4", 3])
@pytest.mark.parametrize("kind", ["replacement", "adjustment"])
def test_an_external_original_is_kept_as_written_and_marked(
    kind: str, related_kind: str | int
) -> None:
    invoice, out = validate_invoice(
        correction(kind, related_kind=related_kind), CFG, package_id="P", now=NOW
    )
    assert out == []
    assert invoice is not None
    legacy = VnKey(SELLER, "01GTKT0/001", "AA/21E", 123)
    assert invoice.original == legacy
    [relation] = invoice.relations
    forward = RelationKind.REPLACES if kind == "replacement" else RelationKind.ADJUSTS
    assert (relation.kind, relation.key, relation.at) == (forward, legacy, NOW)
    assert is_external(relation)
    assert f"LHDCLQuan {related_kind}" in (relation.reason or "")


@pytest.mark.parametrize("related_kind", [None, "1"])
def test_a_decree_123_original_is_checked_like_any_key(related_kind: str | None) -> None:
    assert rules(correction(related_kind=related_kind)) == [
        ("vn.template.invalid", "original.template"),
        ("vn.series.invalid", "original.series"),
    ]


@pytest.mark.parametrize(
    ("over", "found"),
    [
        ({"template": "01GTKT0/0012"}, [("vn.original.external_key", "original.template")]),
        ({"series": "AA/21E:9"}, [("vn.original.external_key", "original.series")]),
        ({"series": "AA 21E"}, [("vn.original.external_key", "original.series")]),
        ({"number": "123456789"}, [("vn.number.out_of_range", "original.number")]),
        ({"seller_tax_id": "0100233480"}, [("vn.tax_id.invalid", "original.seller_tax_id")]),
        ({"related_kind": "5"}, [("invoice.field.invalid", "original.related_kind")]),
        ({"related_kind": True}, [("invoice.field.invalid", "original.related_kind")]),
    ],
    ids=["template of 12", "colon", "space", "number of 9 digits", "seller", "kind 5", "bool"],
)
def test_an_external_key_is_still_checked(
    over: dict[str, Any], found: list[tuple[str, str | None]]
) -> None:
    assert rules(correction(**over))[: len(found)] == found


def test_related_kind_is_vietnamese_only() -> None:
    original = {"invoice_code": CN_CODE_E, "invoice_number": "81532753", "related_kind": "3"}
    raw = cn_invoice("81532754", kind="replacement", original=original)
    assert rules(raw) == [("invoice.field.invalid", "original.related_kind")]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_sqlite_store(tmp_path / "x.sqlite3") as sqlite_store:
        yield sqlite_store


async def test_intake_links_one_way_and_stores_the_mark(store: SqliteStore) -> None:
    intake = Intake(store, CFG, clock=lambda: NOW)
    result = await intake.ingest(package_from_json(package([correction("adjustment")])))
    assert result.notice["result"] == "accepted", result.notice
    stored = await store.get_invoice(VnKey(SELLER, "1", "C22TAA", 2).doc_id)
    assert stored is not None
    assert stored.kind is Kind.ADJUSTMENT
    assert stored.original == VnKey(SELLER, "01GTKT0/001", "AA/21E", 123)
    [relation] = stored.relations
    assert is_external(relation)
    assert relation.kind is RelationKind.ADJUSTS
    assert await store.get_invoice(relation.key.doc_id if relation.key else "") is None


async def test_an_external_original_of_another_seller_is_refused(store: SqliteStore) -> None:
    intake = Intake(store, CFG, clock=lambda: NOW)
    result = await intake.ingest(package_from_json(package([correction(seller_tax_id=SELLER_2)])))
    [item] = result.notice["items"]
    assert [e["rule"] for e in item["errors"]] == ["chain.original.scheme"]


def test_xml_lhdclquan_becomes_related_kind() -> None:
    body = xml_package([vn_invoice(2, kind="replacement", original=LEGACY)])
    body = body.replace(b"<LHDCLQuan>1</LHDCLQuan>", b"<LHDCLQuan>3</LHDCLQuan>")
    [invoice] = parse_xml_package(body, max_items=10).package.invoices
    assert invoice["original"] == {**LEGACY, "related_kind": "3"}
