"""Cancel notices at intake against a real SQLite store and registry: the step-1 rules of
their sender, and how a 04/SS notice is counted and read (issue 17, items 3 and 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from indexer.intake import Intake
from indexer.keys import VnKey
from indexer.model import Lifecycle
from indexer.package import Package, PackageError, package_from_json
from indexer.registry import parse_registry_json
from indexer.rules import RuleConfig
from indexer.store.registry import SqliteRegistry, open_sqlite_registry
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from indexer.validate import validate_notice
from indexer.vn_xml import parse_xml_package
from tests.factories import PROVIDER, SELLER, cancel, package, vn_invoice, vn_key
from tests.indexer.registries import registry
from tests.xml_factories import tbao, xml_package

NOW = datetime(2026, 11, 23, tzinfo=UTC)
OTHER_PROVIDER = "0101243150"


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteRegistry]]:
    async with (
        open_sqlite_store(tmp_path / "x.sqlite3") as store,
        open_sqlite_registry(tmp_path / "registry.sqlite3") as registry,
    ):
        yield store, registry


async def ingest(intake: Intake, body: dict[str, Any]) -> dict[str, Any]:
    return (await intake.ingest(package_from_json(body))).notice


def rules(notice: dict[str, Any]) -> list[list[str]]:
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


@pytest.mark.parametrize(
    ("sender", "valid_to", "rule"),
    [
        (OTHER_PROVIDER, "2099-12-31", "registry.provider.unknown"),
        (PROVIDER, "2025-12-31", "registry.provider.contract_invalid"),
    ],
    ids=["unknown sender", "contract ended"],
)
async def test_a_cancel_notice_goes_through_the_provider_check(
    stores: tuple[SqliteStore, SqliteRegistry], sender: str, valid_to: str, rule: str
) -> None:
    """vn-einvoice §8 step 1.5: "the transmission provider's (T-VAN) contract valid" is a
    check of the package, whatever it carries; a 04/SS notice (§6.5) is no exception."""
    store, taxpayers = stores
    intake = Intake(store, RuleConfig(), taxpayers, clock=lambda: NOW)
    await taxpayers.import_registry(parse_registry_json(registry()))
    assert rules(await ingest(intake, package([vn_invoice(1)]))) == [[]]
    await taxpayers.import_registry(parse_registry_json(registry(valid_to)))
    body = package(notices=[cancel(1)])
    body["sender"] = sender
    notice = await ingest(intake, body)
    assert rules(notice) == [[rule]]
    assert notice["result"] == "rejected"
    stored = await store.get_invoice(vn_key_doc(1))
    assert stored is not None
    assert stored.lifecycle is Lifecycle.ISSUED


async def test_a_notice_from_a_provider_under_contract_cancels(
    stores: tuple[SqliteStore, SqliteRegistry],
) -> None:
    store, taxpayers = stores
    intake = Intake(store, RuleConfig(), taxpayers, clock=lambda: NOW)
    await taxpayers.import_registry(parse_registry_json(registry()))
    await ingest(intake, package([vn_invoice(1)]))
    assert rules(await ingest(intake, package(notices=[cancel(1)]))) == [[]]
    stored = await store.get_invoice(vn_key_doc(1))
    assert stored is not None
    assert stored.lifecycle is Lifecycle.CANCELLED


def vn_key_doc(number: int) -> str:
    return VnKey(**vn_key(number)).doc_id


# --- item 9: how a 04/SS notice is counted and read -------------------------------------------


def xml_notice(rows: list[dict[str, Any]], count: int, invoices: int = 0) -> Package:
    """An XML package of `invoices` invoices and one 04/SS notice of `rows`, declaring
    `count` items (SLuong)."""
    body = xml_package(
        [vn_invoice(n) for n in range(1, invoices + 1)],
        notices=[tbao(SELLER, rows)],
        count=count,
        package_id=f"V0101300842N{count}{len(rows)}{invoices}",
    )
    return parse_xml_package(body, max_items=100).package


def test_sluong_counts_the_tbao_notice_not_its_rows() -> None:
    """vn-einvoice §6.1: "`SLuong` = number of data items (invoices) in `DLieu`; a mismatch
    with the actual count is a package-level error"; a TBao is one data item."""
    package = xml_notice([vn_key(1), vn_key(2)], count=3, invoices=2)
    assert (package.declared_count, len(package.invoices), len(package.notices)) == (3, 2, 2)
    with pytest.raises(PackageError) as caught:
        xml_notice([vn_key(1), vn_key(2)], count=4, invoices=2)
    assert (caught.value.code, caught.value.details) == (
        "package.count_mismatch",
        {"declared_count": 4, "actual": 3},
    )


def test_an_explain_only_notice_is_one_explain_item() -> None:
    """One 04/SS TBao that cancels nothing is one item: what its sender's checks answer."""
    package = xml_notice([{**vn_key(1), "nature": "4"}, {**vn_key(2), "nature": "3"}], count=1)
    assert (package.declared_count, package.item_count) == (1, 1)
    assert package.notices == [{"kind": "explain", "notice_id": "04SS-2022-07"}]


def test_a_json_package_still_counts_its_notices() -> None:
    with pytest.raises(PackageError) as caught:
        package_from_json(package(notices=[cancel(1), cancel(2)], declared=1))
    assert caught.value.details == {"declared_count": 1, "actual": 2}


async def test_one_notice_cancels_two_invoices(stores: tuple[SqliteStore, SqliteRegistry]) -> None:
    store, _ = stores
    intake = Intake(store, RuleConfig(), clock=lambda: NOW)
    await ingest(intake, package([vn_invoice(1), vn_invoice(2)]))
    result = await intake.ingest(xml_notice([vn_key(1), vn_key(2)], count=1))
    assert (result.notice["result"], rules(result.notice)) == ("accepted", [[], []])
    for number in (1, 2):
        stored = await store.get_invoice(vn_key_doc(number))
        assert stored is not None
        assert stored.lifecycle is Lifecycle.CANCELLED


@pytest.mark.parametrize("queued", [False, True], ids=["applied", "queued"])
async def test_an_explain_only_notice_is_accepted(
    stores: tuple[SqliteStore, SqliteRegistry], queued: bool
) -> None:
    store, _ = stores
    intake = Intake(store, RuleConfig(), clock=lambda: NOW)
    notice = xml_notice([{**vn_key(1), "nature": "4"}], count=1)
    if queued:
        body = (await intake.provisional(notice, store, received_at=NOW)).notice
    else:
        body = (await intake.ingest(notice)).notice
    expected = "queued" if queued else "accepted"
    assert (body["result"], body["rejected"]) == (expected, 0)
    assert [(i["result"], i["errors"]) for i in body["items"]] == [(expected, [])]


@pytest.mark.parametrize("reason", ["   ", "\u200b", "\ufeff", "\u3000\t"])
def test_a_reason_that_shows_nothing_is_no_reason(reason: str) -> None:
    """vn-einvoice §8 step 2.5: "cancellation only after a 04/SS-HĐĐT notice ... with
    `TCTBao=1` and a reason `LDo`"."""
    notice, out = validate_notice(cancel(1, reason=reason), RuleConfig())
    assert notice is None
    assert [(v.code, v.detail) for v in out] == [("notice.reason.required", "blank")]
