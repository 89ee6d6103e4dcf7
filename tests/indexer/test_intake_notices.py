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
from indexer.package import package_from_json
from indexer.registry import parse_registry_json
from indexer.rules import RuleConfig
from indexer.store.registry import SqliteRegistry, open_sqlite_registry
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from tests.factories import PROVIDER, cancel, package, vn_invoice, vn_key
from tests.indexer.registries import registry

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
