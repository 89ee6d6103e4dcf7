"""What the XML data standard requires of an `HDon`, and how `NLap` is read (issue 17,
item 7): a missing element is a finding on its invoice; the intake reports it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from indexer.intake import Intake
from indexer.package import ItemFinding
from indexer.rules import RuleConfig, Severity
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from indexer.vn_xml import invoice_from_hdon, parse_xml_package
from tests.factories import vn_invoice
from tests.xml_factories import hdon, xml_package

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CASH = {"series": "C22MAA", "authority_code": "M1-22-ABCDE-00000000001"}


def without(element: etree._Element, path: str) -> etree._Element:
    """`element` with the one element at `path` (below it) removed."""
    copy = etree.fromstring(etree.tostring(element))
    found = copy.find(path)
    assert found is not None, path
    parent = found.getparent()
    assert parent is not None
    parent.remove(found)
    return copy


REQUIRED = [
    "DLHDon/TTChung/PBan",
    "DLHDon/TTChung/THDon",
    "DLHDon/NDHDon/NBan/Ten",
    "DLHDon/NDHDon/NBan/DChi",
    "DLHDon/NDHDon/DSHHDVu/HHDVu",
    "DLHDon/NDHDon/TToan/TgTTTBChu",
]


@pytest.mark.parametrize("path", REQUIRED)
def test_each_required_element_missing_is_a_finding(path: str) -> None:
    """vn-einvoice §5.2: what the data standard requires of every invoice: the version
    `PBan`, the invoice's name `THDon`, the seller's name and address (`NBan/Ten`,
    `NBan/DChi`), at least one line (`DSHHDVu/HHDVu`) and the total in words (`TgTTTBChu`)."""
    _, findings = invoice_from_hdon(without(hdon(vn_invoice(1)), path))
    assert findings == [ItemFinding("vn.xml.element_required", path)]


def test_a_blank_required_element_is_missing_too() -> None:
    element = hdon(vn_invoice(1))
    pban = element.find("DLHDon/TTChung/PBan")
    assert pban is not None
    pban.text = "  "
    assert invoice_from_hdon(element)[1] == [
        ItemFinding("vn.xml.element_required", "DLHDon/TTChung/PBan")
    ]


def test_a_complete_invoice_has_no_finding() -> None:
    assert invoice_from_hdon(hdon(vn_invoice(1)))[1] == []


def test_a_cash_register_invoice_in_the_reduced_form_is_taken_as_vnd() -> None:
    """vn-einvoice §6.3: the cash-register `TTChung` is "reduced to `PBan, THDon, KHMSHDon,
    KHHDon, SHDon, NLap, TTHDLQuan, TTKhac`" (unconfirmed): no `DVTTe`."""
    invoice, findings = invoice_from_hdon(hdon(vn_invoice(1, currency=None, **CASH)))
    assert invoice["currency"] == "VND"
    assert findings == [ItemFinding("vn.cash_register.currency_default", "currency", "VND")]


def test_another_invoice_without_dvtte_is_not_given_a_currency() -> None:
    invoice, findings = invoice_from_hdon(hdon(vn_invoice(1, currency=None)))
    assert ("currency" in invoice, findings) == (False, [])


@pytest.mark.parametrize(
    ("nlap", "issued_at"),
    [
        ("2025-03-10", "2025-03-10T00:00:00+07:00"),
        ("2025-03-10T10:15:00", "2025-03-10T10:15:00+07:00"),
        ("2025-03-10T10:15:00+07:00", "2025-03-10T10:15:00+07:00"),
        ("2025-03-10T03:15:00Z", "2025-03-10T03:15:00Z"),
        ("2025-03-10+07:00", "2025-03-10T00:00:00+07:00"),
    ],
)
def test_nlap_keeps_an_offset_it_carries(nlap: str, issued_at: str) -> None:
    """vn-einvoice §1.4: "accept `YYYY-MM-DD[Thh:mm:ss]`" in Vietnam time; a producer that
    writes the offset (`+07:00`) must not get a second one."""
    element = hdon(vn_invoice(1))
    nlap_element = element.find("DLHDon/TTChung/NLap")
    assert nlap_element is not None
    nlap_element.text = nlap
    assert invoice_from_hdon(element)[0]["issued_at"] == issued_at


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_sqlite_store(tmp_path / "x.sqlite3") as sqlite_store:
        yield sqlite_store


def body_without(path: str, **over: Any) -> bytes:
    envelope = etree.fromstring(xml_package([vn_invoice(1, **over)]))
    found = envelope.find(f"DLieu/HDon/{path}")
    assert found is not None
    parent = found.getparent()
    assert parent is not None
    parent.remove(found)
    return bytes(etree.tostring(envelope))


async def item_of(intake: Intake, body: bytes) -> dict[str, Any]:
    result = await intake.ingest(parse_xml_package(body, max_items=10).package)
    [item] = result.notice["items"]
    return dict(item)


async def test_intake_refuses_an_invoice_missing_a_required_element(store: SqliteStore) -> None:
    intake = Intake(store, RuleConfig(), clock=lambda: NOW)
    item = await item_of(intake, body_without("DLHDon/NDHDon/NBan/DChi"))
    assert item["result"] == "rejected"
    assert [(e["rule"], e["field"]) for e in item["errors"]] == [
        ("vn.xml.element_required", "DLHDon/NDHDon/NBan/DChi")
    ]
    assert await store.count_invoices() == 0


async def test_the_element_rule_can_be_made_a_warning(store: SqliteStore) -> None:
    cfg = RuleConfig(severity={"vn.xml.element_required": Severity.WARNING})
    intake = Intake(store, cfg, clock=lambda: NOW)
    item = await item_of(intake, body_without("DLHDon/TTChung/THDon"))
    assert item["result"] == "accepted"
    assert [w["rule"] for w in item["warnings"]] == ["vn.xml.element_required"]


@pytest.mark.parametrize(
    ("severity", "result", "warnings"),
    [
        (None, "accepted", ["vn.cash_register.currency_default"]),
        (Severity.OFF, "accepted", []),
        (Severity.ERROR, "rejected", []),
    ],
)
async def test_the_reduced_cash_register_form_is_accepted_unless_configured_otherwise(
    store: SqliteStore, severity: Severity | None, result: str, warnings: list[str]
) -> None:
    cfg = RuleConfig(
        severity={} if severity is None else {"vn.cash_register.currency_default": severity}
    )
    intake = Intake(store, cfg, clock=lambda: NOW)
    item = await item_of(intake, body_without("DLHDon/TTChung/DVTTe", **CASH))
    assert (item["result"], [w["rule"] for w in item["warnings"]]) == (result, warnings)
