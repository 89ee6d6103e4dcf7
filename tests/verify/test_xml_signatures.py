"""Seller signatures through the real app and CLI, with INVOICE_TRUST_ANCHORS pointing at a
PEM the test writes: good signatures accepted, bad ones rejected with nothing stored, and no
checks at all when no anchors are configured (the documented default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from typer.testing import CliRunner

from tests.conftest import Client
from tests.factories import SELLER_2, vn_invoice, vn_key
from tests.pki import Pki, make_pki
from tests.xml_factories import sign_hdon, signed_xml_package, xml_package
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.settings import Settings, SettingsError

XML = {"Content-Type": "application/xml"}
CASH = {"series": "C22MAA"}
Signer = Callable[[etree._Element, dict[str, Any]], etree._Element]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def anchors_file(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "anchors" / "root.pem"
    path.parent.mkdir()
    path.write_bytes(pki.anchors_pem)
    return path


@pytest.fixture
def settings(tmp_path: Path, anchors_file: Path) -> Settings:
    """Overrides tests/conftest.py's: the `cli` fixture runs the app with trust anchors."""
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_TRUST_ANCHORS": str(anchors_file)})


def seller_signs(pki: Pki, *, uid: str | None = None, algorithm: str = "rsa-sha256",
                 tamper: bool = False) -> Signer:
    def sign(element: etree._Element, invoice: dict[str, Any]) -> etree._Element:
        cert = pki.leaf(uid) if uid else pki.leaf()
        signed = sign_hdon(element, pki.seller_key, [cert], algorithm=algorithm)
        if tamper:
            total = signed.find("DLHDon/NDHDon/TToan/TgTTTBSo")
            assert total is not None
            total.text = "1"
        return signed
    return sign


def per_invoice(plan: dict[int, Signer | None]) -> Signer:
    """Sign invoice N with plan[N]; None leaves it unsigned."""
    def sign(element: etree._Element, invoice: dict[str, Any]) -> etree._Element:
        signer = plan[int(invoice["number"])]
        return element if signer is None else signer(element, invoice)
    return sign


def cash_invoice(number: int) -> dict[str, Any]:
    return vn_invoice(number, **CASH, authority_code=f"M1-22-ABCDE-{number:011d}")


async def post_xml(cli: Client, body: bytes) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", data=body, headers=XML)
    assert resp.status == 200, await resp.text()
    notice: dict[str, Any] = await resp.json()
    return notice


async def status_of(cli: Client, number: int, **key: Any) -> str:
    resp = await cli.get("/api/v1/invoices/lookup", params={
        k: str(v) for k, v in vn_key(number, **key).items()})
    answer: dict[str, Any] = await resp.json()
    return str(answer["status"])


def outcome(notice: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(item["result"], [e["rule"] for e in item["errors"]]) for item in notice["items"]]


async def test_each_invoice_is_judged_by_its_own_signature(cli: Client, pki: Pki) -> None:
    invoices = [vn_invoice(n) for n in (1, 2, 3, 4)] + [cash_invoice(5), vn_invoice(6)]
    body = signed_xml_package(invoices, per_invoice({
        1: seller_signs(pki),
        2: seller_signs(pki, algorithm="rsa-sha1"),
        3: seller_signs(pki, tamper=True),
        4: None,
        5: None,
        6: seller_signs(pki, uid=f"MST:{SELLER_2}"),
    }), package_id="V0101300842SIG1")
    notice = await post_xml(cli, body)
    assert notice["result"] == "partially_accepted"
    assert outcome(notice) == [
        ("accepted", []), ("accepted", []), ("rejected", ["vn.signature.invalid"]),
        ("rejected", ["vn.signature.missing"]), ("accepted", []),
        ("rejected", ["vn.signature.tax_id_mismatch"])]
    error = notice["items"][2]["errors"][0]
    assert error["field"] == "signature"
    assert error["message_vi"].startswith("Chữ ký số của người bán không hợp lệ")
    assert error["spec"] == "vn-einvoice §5.1, §5.8"
    assert [await status_of(cli, n) for n in (1, 2, 3, 4, 6)] == [
        "valid", "valid", "not_found", "not_found", "not_found"]
    assert await status_of(cli, 5, **CASH) == "valid"
    kept = await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:1/original.xml")
    assert kept.status == 200
    assert b"SignatureValue" in await kept.read()
    refused = await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:3/original.xml")
    assert refused.status == 404


async def test_a_rejected_invoice_leaves_nothing_behind(cli: Client, pki: Pki) -> None:
    """Its key is not taken: sent again with a good signature, it is accepted."""
    tampered = await post_xml(cli, signed_xml_package(
        [vn_invoice(7)], seller_signs(pki, tamper=True), package_id="V0101300842SIG2"))
    assert outcome(tampered) == [("rejected", ["vn.signature.invalid"])]
    fixed = await post_xml(cli, signed_xml_package(
        [vn_invoice(7)], seller_signs(pki), package_id="V0101300842SIG3"))
    assert outcome(fixed) == [("accepted", [])]
    assert await status_of(cli, 7) == "valid"


async def test_an_untrusted_certificate_is_rejected(cli: Client, pki: Pki) -> None:
    def rogue(element: etree._Element, invoice: dict[str, Any]) -> etree._Element:
        return sign_hdon(element, pki.seller_key, [pki.leaf(trusted=False)])

    notice = await post_xml(cli, signed_xml_package([vn_invoice(8)], rogue))
    assert outcome(notice) == [("rejected", ["vn.signature.untrusted"])]


async def test_without_trust_anchors_signatures_are_not_checked(
        aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path, pki: Pki) -> None:
    off = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "off"),
                             "INVOICE_INSECURE_LOCAL": "1"})
    assert off.trust_anchors is None
    client = await aiohttp_client(create_app(off))
    body = signed_xml_package([vn_invoice(1), vn_invoice(2)], per_invoice({
        1: seller_signs(pki, tamper=True), 2: None}))
    notice = await post_xml(client, body)
    assert outcome(notice) == [("accepted", []), ("accepted", [])]


def test_unusable_trust_anchors_stop_the_start(tmp_path: Path) -> None:
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                                  "INVOICE_TRUST_ANCHORS": str(tmp_path / "missing.pem")})
    with pytest.raises(SettingsError, match=r"INVOICE_TRUST_ANCHORS: .*missing\.pem: cannot read"):
        create_app(settings)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("  ", None), ("/etc/invoice/anchors", Path("/etc/invoice/anchors"))])
def test_trust_anchors_setting(value: str | None, expected: Path | None) -> None:
    env = {} if value is None else {"INVOICE_TRUST_ANCHORS": value}
    assert Settings.from_env(env).trust_anchors == expected


def test_cli_ingests_xml_packages_with_the_same_signature_checks(
        tmp_path: Path, anchors_file: Path, pki: Pki) -> None:
    signed_file = tmp_path / "signed.xml"
    signed_file.write_bytes(signed_xml_package(
        [vn_invoice(1), vn_invoice(2)],
        per_invoice({1: seller_signs(pki), 2: seller_signs(pki, tamper=True)}),
        package_id="V0101300842CLI1"))
    env = {"INVOICE_TRUST_ANCHORS": str(anchors_file)}
    data = str(tmp_path / "data")
    result = CliRunner().invoke(cli_app, ["ingest", str(signed_file), "--data-dir", data],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "V0101300842CLI1 partially_accepted: 1 accepted, 1 rejected" in result.output
    assert "item 1: vn.signature.invalid" in result.output
    unsigned = tmp_path / "unsigned.xml"
    unsigned.write_bytes(xml_package([vn_invoice(3)], package_id="V0101300842CLI2"))
    off = CliRunner().invoke(cli_app, ["ingest", str(unsigned), "--data-dir", data],
                             env={"INVOICE_TRUST_ANCHORS": ""}, catch_exceptions=False)
    assert "V0101300842CLI2 accepted: 1 accepted, 0 rejected" in off.output


def test_cli_refuses_unusable_trust_anchors(tmp_path: Path) -> None:
    package = tmp_path / "p.xml"
    package.write_bytes(xml_package([vn_invoice(1)]))
    result = CliRunner().invoke(
        cli_app, ["ingest", str(package), "--data-dir", str(tmp_path / "data")],
        env={"INVOICE_TRUST_ANCHORS": str(tmp_path / "none.pem")}, catch_exceptions=False)
    assert result.exit_code == 2
    assert "INVOICE_TRUST_ANCHORS" in result.output
