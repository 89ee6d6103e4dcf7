"""Issue 17 item 4 through the real app and CLI: with trust anchors configured no Vietnamese
invoice escapes a signature check. A JSON package carries no seller signature, so its
Vietnamese invoices are refused (`vn.signature.json_unsigned`, docs/vn-rules.md §5.8); a
cash-register package (message 206) is checked by its taxpayer's signature `CKSNNT`
(vn-einvoice §6.3: batches "signed once by the taxpayer (`CKSNNT`)")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import Client
from tests.factories import package, vn_invoice
from tests.pki import Pki, make_pki
from tests.verify.test_xml_signatures import cash_invoice, outcome, post_xml, status_of
from tests.xml_factories import signed_cash_register_package, xml_package
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.settings import Settings


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def anchors_file(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "root.pem"
    path.write_bytes(pki.anchors_pem)
    return path


@pytest.fixture
def settings(tmp_path: Path, anchors_file: Path) -> Settings:
    """Overrides tests/conftest.py's: the `cli` fixture runs the app with trust anchors."""
    return Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_TRUST_ANCHORS": str(anchors_file)}
    )


def items(notice: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    return [
        (
            item["result"],
            [e["rule"] for e in item["errors"]],
            [w["rule"] for w in item.get("warnings", [])],
        )
        for item in notice["items"]
    ]


async def test_an_unsigned_json_package_is_refused_with_anchors(cli: Client) -> None:
    resp = await cli.post(
        "/api/v1/packages", json=package([vn_invoice(41)], package_id="PKG-JSON-UNSIGNED")
    )
    assert resp.status == 200, await resp.text()
    notice = await resp.json()
    assert outcome(notice) == [("rejected", ["vn.signature.json_unsigned"])]
    assert await status_of(cli, 41) == "not_found"


async def test_a_json_package_is_accepted_without_anchors(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    off = Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "off"), "INVOICE_INSECURE_LOCAL": "1"}
    )
    client = await aiohttp_client(create_app(off))
    resp = await client.post("/api/v1/packages", json=package([vn_invoice(42)]))
    assert resp.status == 200, await resp.text()
    assert outcome(await resp.json()) == [("accepted", [])]


def test_cli_refuses_an_unsigned_json_package_with_anchors(
    tmp_path: Path, anchors_file: Path
) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(package([vn_invoice(43)], package_id="PKG-JSON-CLI")))
    data = str(tmp_path / "data")
    result = CliRunner().invoke(
        cli_app,
        ["ingest", str(path), "--data-dir", data],
        env={"INVOICE_TRUST_ANCHORS": str(anchors_file)},
        catch_exceptions=False,
    )
    assert "PKG-JSON-CLI rejected: 0 accepted, 1 rejected" in result.output, result.output
    assert "item 0: vn.signature.json_unsigned" in result.output
    off = CliRunner().invoke(
        cli_app,
        ["ingest", str(path), "--data-dir", str(tmp_path / "off")],
        env={"INVOICE_TRUST_ANCHORS": ""},
        catch_exceptions=False,
    )
    assert "PKG-JSON-CLI accepted: 1 accepted, 0 rejected" in off.output, off.output


async def test_a_cash_register_package_with_a_valid_cksnnt_is_accepted(
    cli: Client, pki: Pki
) -> None:
    body = signed_cash_register_package(
        [cash_invoice(51), cash_invoice(52)],
        pki.seller_key,
        [pki.leaf()],
        package_id="V0101300842CR1",
    )
    notice = await post_xml(cli, body)
    assert items(notice) == [("accepted", [], []), ("accepted", [], [])]
    assert await status_of(cli, 51, series="C22MAA") == "valid"


@pytest.mark.parametrize(
    "options", [{"tamper": True}, {"trusted": False}], ids=["changed after signing", "untrusted CA"]
)
async def test_a_bad_cksnnt_refuses_the_package(
    cli: Client, pki: Pki, options: dict[str, bool]
) -> None:
    body = signed_cash_register_package(
        [cash_invoice(53)],
        pki.seller_key,
        [pki.leaf(trusted=options.get("trusted", True))],
        tamper=options.get("tamper", False),
        package_id="V0101300842CR2",
    )
    notice = await post_xml(cli, body)
    assert outcome(notice) == [("rejected", ["vn.signature.package_invalid"])]
    assert notice["items"][0]["errors"][0]["field"] == "package_signature"
    assert (
        await status_of(cli, 53 + (1000 if options.get("tamper") else 0), series="C22MAA")
        == "not_found"
    )


async def test_a_cash_register_package_without_cksnnt_is_warned(cli: Client) -> None:
    """§6.3's package signature is unconfirmed: a warning by default, the invoice stored."""
    notice = await post_xml(cli, xml_package([cash_invoice(54)], package_id="V0101300842CR3"))
    assert items(notice) == [("accepted", [], ["vn.signature.package_missing"])]
    assert await status_of(cli, 54, series="C22MAA") == "valid"
