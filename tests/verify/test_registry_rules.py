"""Step-1 registry rules through the real app: each rule rejects exactly what it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import Client
from tests.factories import PROVIDER, SELLER, package, vn_invoice
from verify.cli.main import app as cli_app

CASH = {"series": "C22MAA", "authority_code": "M1-22-ABCDE-00000000001"}


def registry(**taxpayer: Any) -> dict[str, Any]:
    return {
        "taxpayers": [{"tax_id": SELLER, "name": "Công ty Thử nghiệm", "status": "00",
                       "cash_register_code_ranges": ["ABCDE"],
                       "registrations": [{"template": "1", "series": "C22TAA",
                                          "from": "2022-01-01"},
                                         {"template": "1", "series": "C22MAA",
                                          "from": "2022-01-01"}], **taxpayer}],
        "providers": [{"provider_id": PROVIDER, "name": "T-VAN", "valid_from": "2021-07-01",
                       "valid_to": "2099-12-31"}],
    }


async def load_registry(cli: Client, data: dict[str, Any]) -> dict[str, Any]:
    resp = await cli.post("/api/v1/admin/registry", json=data)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def rules_of(cli: Client, *invoices: dict[str, Any],
                   sender: str = PROVIDER) -> list[list[str]]:
    body = package(list(invoices))
    body["sender"] = sender
    resp = await cli.post("/api/v1/packages", json=body)
    notice = await resp.json()
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


async def test_empty_registry_checks_nothing(cli: Client) -> None:
    assert await rules_of(cli, vn_invoice(1), sender="anyone") == [[]]


async def test_registered_seller_and_provider_pass(cli: Client) -> None:
    summary = await load_registry(cli, registry())
    assert summary == {"imported": {"taxpayers": 1, "providers": 1},
                       "totals": {"taxpayers": 1, "providers": 1}}
    assert await rules_of(cli, vn_invoice(1), vn_invoice(2, **CASH)) == [[], []]


@pytest.mark.parametrize(("taxpayer", "invoice", "rule"), [
    ({"status": "01"}, {}, "registry.seller.inactive"),
    ({"status": "05"}, {}, "registry.seller.inactive"),
    ({"einvoice_stopped": True, "stopped_from": "2022-05-01"}, {},
     "registry.seller.einvoice_stopped"),
    ({"cash_register_code_ranges": ["ZZZZZ"]}, CASH, "registry.authority_code.range"),
    ({}, {"series": "C22TBB"}, "registry.registration.missing"),
    ({"registrations": [{"template": "1", "series": "C22TAA", "from": "2022-06-01"}]}, {},
     "registry.registration.missing"),
])
async def test_each_seller_rule(cli: Client, taxpayer: dict[str, Any], invoice: dict[str, Any],
                                rule: str) -> None:
    await load_registry(cli, registry(**taxpayer))
    assert await rules_of(cli, vn_invoice(1, **invoice)) == [[rule]]


async def test_status_02_and_04_are_active_and_a_stop_ending_before_issue_is_over(
        cli: Client) -> None:
    await load_registry(cli, registry(status="02", einvoice_stopped=True,
                                      stopped_until="2022-05-14"))
    assert await rules_of(cli, vn_invoice(1)) == [[]]


async def test_unknown_seller(cli: Client) -> None:
    await load_registry(cli, registry())
    other = vn_invoice(1, seller_tax_id="0102671977")
    assert await rules_of(cli, other) == [["registry.seller.unknown"]]


async def test_provider_unknown_or_out_of_contract(cli: Client) -> None:
    data = registry()
    data["providers"].append({"provider_id": "0314409058", "name": "old", "valid_from":
                              "2021-01-01", "valid_to": "2021-12-31"})
    await load_registry(cli, data)
    assert await rules_of(cli, vn_invoice(1), sender="0102671977") == [
        ["registry.provider.unknown"]]
    assert await rules_of(cli, vn_invoice(2), sender="0314409058") == [
        ["registry.provider.contract_invalid"]]


async def test_csv_upload_and_bad_files(cli: Client) -> None:
    csv = (f"tax_id,name,status\n{SELLER},A,00\n").encode()
    resp = await cli.post("/api/v1/admin/registry", data=csv,
                          headers={"Content-Type": "text/csv"})
    assert (await resp.json())["imported"] == {"taxpayers": 1, "providers": 0}
    bad = await cli.post("/api/v1/admin/registry", json={"taxpayers": [{"tax_id": "1"}]})
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "invalid_registry"
    wrong = await cli.post("/api/v1/admin/registry", data=b"x",
                           headers={"Content-Type": "text/plain"})
    assert wrong.status == 415


def test_cli_import(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry()))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["registry", "import", str(path), "--data-dir",
                                     str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "now holds 1 taxpayers and 1 providers" in result.output
    broken = tmp_path / "broken.csv"
    broken.write_text("nothing\n")
    failed = runner.invoke(cli_app, ["registry", "import", str(broken)])
    assert failed.exit_code == 1
    assert "tax_id or a provider_id" in failed.output
