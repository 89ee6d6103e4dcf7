"""The monthly step-2 run: findings for what changed since intake, none for a clean month."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.intake import Intake
from indexer.keys import VnKey
from indexer.model import Lifecycle, Relation, RelationKind
from indexer.package import package_from_json
from indexer.recheck import Finding, month_bounds, recheck_month
from indexer.registry import parse_registry_json
from indexer.rules import RuleConfig
from indexer.store.protocol import StoredPackage
from indexer.store.registry import SqliteRegistry, open_sqlite_registry
from indexer.store.sqlite import SqliteStore, open_sqlite_store
from tests.factories import SELLER, package, vn_invoice, vn_key
from verify.cli.main import app as cli_app

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CFG = RuleConfig()


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteRegistry]]:
    async with open_sqlite_store(tmp_path / "invoices.sqlite3") as store, \
            open_sqlite_registry(tmp_path / "registry.sqlite3") as registry:
        yield store, registry


async def findings(store: SqliteStore, registry: SqliteRegistry | None,
                   month: str = "2022-05") -> list[Finding]:
    out: list[Finding] = []
    async for _, page in recheck_month(store, registry, month, CFG):
        out.extend(page)
    return out


def test_month_bounds() -> None:
    assert month_bounds("2022-12") == (datetime(2022, 12, 1).date(), datetime(2023, 1, 1).date())
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2022-13")


@pytest.mark.parametrize("month", ["9999-12", "２０２２-05", "2022-05\x00", "\ud800", "٢٠٢٢-٠٥"])
def test_month_bounds_refuse_hostile_months_with_the_same_message(month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds(month)


async def test_a_clean_month_has_no_findings(
        stores: tuple[SqliteStore, SqliteRegistry]) -> None:
    store, registry = stores
    intake = Intake(store, CFG, clock=lambda: NOW)
    await intake.ingest(package_from_json(package(
        [vn_invoice(1), vn_invoice(2), vn_invoice(3, kind="replacement", original=vn_key(1))])))
    assert await findings(store, registry) == []
    assert await findings(store, registry, "2022-06") == []


async def test_registration_withdrawn_after_intake_is_found(
        stores: tuple[SqliteStore, SqliteRegistry]) -> None:
    store, registry = stores
    await Intake(store, CFG, clock=lambda: NOW).ingest(package_from_json(
        package([vn_invoice(1)])))
    await registry.import_registry(parse_registry_json({"taxpayers": [
        {"tax_id": SELLER, "name": "x", "status": "00",
         "registrations": [{"template": "1", "series": "C22TAA", "from": "2022-06-01"}]}]}))
    assert [(f.doc_id, f.rule) for f in await findings(store, registry)] == [
        (f"vn:{SELLER}:1:C22TAA:1", "registry.registration.missing")]


async def test_one_sided_relation_is_found(stores: tuple[SqliteStore, SqliteRegistry]) -> None:
    store, _ = stores
    await Intake(store, CFG, clock=lambda: NOW).ingest(package_from_json(
        package([vn_invoice(1)])))
    stored = await store.get_invoice(f"vn:{SELLER}:1:C22TAA:1")
    assert stored is not None
    ghost = VnKey(SELLER, "1", "C22TAA", 9)
    broken = dataclasses.replace(stored, lifecycle=Lifecycle.REPLACED, relations=(
        Relation(RelationKind.REPLACED_BY, key=ghost, at=NOW),))
    await store.commit_package(StoredPackage("PKG-X", "s", "0" * 64, NOW, {}), [], [broken])
    [finding] = await findings(store, None)
    assert (finding.rule, finding.detail) == ("recheck.relation.one_sided",
                                              f"replaced_by {ghost.doc_id}")


def test_cli_writes_the_report_and_exits_1_on_findings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pkg = tmp_path / "p.json"
    pkg.write_text(json.dumps(package([vn_invoice(1)])))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["ingest", str(pkg), "--data-dir", str(data)]).exit_code == 0
    clean = runner.invoke(cli_app, ["recheck", "--month", "2022-05", "--data-dir", str(data)])
    assert clean.exit_code == 0, clean.output
    assert "1 invoices issued in 2022-05 re-checked: 0 findings" in clean.output
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"taxpayers": [{"tax_id": SELLER, "name": "x",
                                                   "status": "05"}]}))
    assert runner.invoke(cli_app, ["registry", "import", str(registry), "--data-dir",
                                   str(data)]).exit_code == 0
    out = tmp_path / "report.csv"
    found = runner.invoke(cli_app, ["recheck", "--month", "2022-05", "--out", str(out),
                                    "--data-dir", str(data)])
    assert found.exit_code == 1
    assert "registry.seller.inactive" in out.read_text()
    bad = runner.invoke(cli_app, ["recheck", "--month", "May", "--data-dir", str(data)])
    assert bad.exit_code == 2
