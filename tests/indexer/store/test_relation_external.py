"""`Relation.external` on both stores: a correction of a legacy original (vn-einvoice §5.6,
LHDCLQuan 2-4: "Originals of kinds 2-4 were never sent to this index") keeps a one-way link
marked external; relations a release stored before the field (marked only by an `external:`
reason) read as external; and the monthly recheck looks none of them up."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from indexer.keys import VnKey
from indexer.model import Invoice, Kind, Relation, RelationKind
from indexer.recheck import Finding, recheck_month
from indexer.rules import RuleConfig
from indexer.store.protocol import InvoiceStore
from indexer.validate import validate_invoice
from tests.factories import SELLER, vn_invoice
from tests.indexer.store.test_contract import NOW, pkg

LEGACY = VnKey(SELLER, "01GTKT0/001", "AA/21E", 123)
LEGACY_FIELDS = {
    "seller_tax_id": SELLER,
    "template": "01GTKT0/001",
    "series": "AA/21E",
    "number": 123,
    "related_kind": "3",
}


def correction(kind: str) -> Invoice:
    raw = vn_invoice(2, kind=kind, original=LEGACY_FIELDS)
    invoice, problems = validate_invoice(raw, RuleConfig(), package_id="PKG-1", now=NOW)
    assert invoice is not None, problems
    return invoice


async def month_findings(store: InvoiceStore) -> list[Finding]:
    out: list[Finding] = []
    async for _, page in recheck_month(store, None, "2022-05", RuleConfig()):
        out.extend(page)
    return out


@pytest.mark.parametrize("kind", ["replacement", "adjustment"])
async def test_an_external_link_is_stored_and_read_back_as_such(
    store: InvoiceStore, kind: str
) -> None:
    invoice = correction(kind)
    [relation] = invoice.relations
    assert relation.external
    await store.commit_package(pkg(), [invoice], [])
    stored = await store.get_invoice(invoice.doc_id)
    assert stored is not None
    assert stored.relations == invoice.relations
    assert await month_findings(store) == []  # no chain.original.not_found, no one_sided


async def test_a_relation_stored_before_the_field_reads_as_external(store: InvoiceStore) -> None:
    """What an earlier release wrote: the same link with only its reason saying external."""
    invoice = correction("replacement")
    old = dataclasses.replace(invoice.relations[0], external=False)
    await store.commit_package(pkg(), [dataclasses.replace(invoice, relations=(old,))], [])
    stored = await store.get_invoice(invoice.doc_id)
    assert stored is not None
    assert stored.relations[0].external
    assert await month_findings(store) == []


async def test_a_link_not_marked_external_is_still_checked(store: InvoiceStore) -> None:
    """The skip is for external links only: the same replacement of a Decree 123 invoice the
    index does not hold is found."""
    original = VnKey(SELLER, "1", "C22TAA", 9)
    invoice = dataclasses.replace(
        correction("replacement"),
        kind=Kind.REPLACEMENT,
        original=original,
        relations=(Relation(RelationKind.REPLACES, key=original, at=datetime(2026, 1, 1)),),
    )
    await store.commit_package(pkg(), [invoice], [])
    rules = sorted(f.rule for f in await month_findings(store))
    assert rules == ["chain.original.not_found", "recheck.relation.one_sided"]
