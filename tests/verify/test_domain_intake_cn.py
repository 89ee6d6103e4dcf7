"""Chinese invoices at intake through the real app (issue 17, item 10, intake side)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, bearer
from tests.factories import CN_CODE_E, CN_CODE_SPECIAL, cancel, cn_digital, cn_invoice, package
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

#: The check code and tail of the factories' e-invoice, as its printed QR carries them.
QR_E = f"01,10,{CN_CODE_E},81532753,205.30,20230323,49753264642977383169,0816,"


async def post(
    cli: Client,
    invoices: list[dict[str, Any]] | None = None,
    notices: list[dict[str, Any]] | None = None,
) -> list[list[str]]:
    resp = await cli.post("/api/v1/packages", json=package(invoices, notices))
    assert resp.status == 200, await resp.text()
    return [[e["rule"] for e in item["errors"]] for item in (await resp.json())["items"]]


async def lookup(cli: Client, **key: str) -> dict[str, Any]:
    answer: dict[str, Any] = await (await cli.get("/api/v1/invoices/lookup", params=key)).json()
    return answer


async def test_an_ordinary_invoice_needs_its_check_code_for_its_qr_to_match(cli: Client) -> None:
    """cn-invoice §3.1: field 6 is the "校验码 (check code) | 20 digits for 普票/e-invoices";
    §4.1: for 04, 10, 11, 14 the platform asks the "last 6 digits of the 20-digit 校验码".
    Indexed without it, the invoice's own QR would answer `mismatch`."""
    assert await post(cli, [cn_invoice(check_code=None)]) == [["cn.check_code.required"]]
    assert await post(cli, [cn_invoice()]) == [[]]
    body = await (await cli.post("/api/v1/verify/qr-text", json={"payload": QR_E})).json()
    assert (body["result"]["status"], body["result"]["mismatches"]) == ("valid", []), body


async def test_voiding_a_digital_invoice_is_refused(cli: Client) -> None:
    """cn-invoice §4.4: 作废 is "voided by the seller (paper invoices, same month)"; a 数电
    invoice (§2: a 20-digit number, no code) is reversed by a red-letter invoice instead."""
    digital = cn_digital()
    assert await post(cli, [digital]) == [[]]
    key = {"invoice_number": digital["invoice_number"]}
    assert await post(cli, notices=[cancel(1, key=key)]) == [["cn.void.fully_digitalised"]]
    answer = await lookup(
        cli, number=key["invoice_number"], total_amount="112.00", issued_on="2023-02-15"
    )
    assert answer["status"] == "valid"


@pytest.mark.parametrize(
    ("code", "type_code"),
    [("013002200211", "10"), ("013002200213", "08"), ("013002200212", "14")],
    ids=["10 ordinary e-invoice", "08 e-special invoice", "14 toll e-invoice"],
)
async def test_voiding_a_pre_digital_e_invoice_is_refused(
    cli: Client, code: str, type_code: str
) -> None:
    """cn-invoice §4.4: 作废 is "voided by the seller (paper invoices, same month)"; 红冲 is
    "reversed by a red-letter invoice". Electronic invoices of the 增值税发票管理系统 (§1.2:
    code suffix `11` → 10, `12` → 14, `13` → 08) are not paper: they are red-lettered,
    never voided."""
    invoice = cn_invoice(invoice_code=code, type_code=type_code)
    assert await post(cli, [invoice]) == [[]]
    key = {"invoice_code": code, "invoice_number": invoice["invoice_number"]}
    assert await post(cli, notices=[cancel(1, key=key)]) == [["cn.void.electronic"]]
    answer = await lookup(cli, code=code, number=invoice["invoice_number"])
    assert answer["status"] == "valid"


async def test_voiding_a_paper_invoice_is_accepted(cli: Client) -> None:
    """§4.4: paper invoices are what 作废 is for (`…04` 2-copy paper 普票, a 10-digit 专票)."""
    paper = cn_invoice(invoice_code="013002200204", type_code="04")
    special = cn_invoice(invoice_code=CN_CODE_SPECIAL, type_code="01", check_code=None)
    assert await post(cli, [paper, special]) == [[], []]
    voids = [
        cancel(1, key={"invoice_code": c, "invoice_number": "81532753"}, notice_id=f"ZF-{c}")
        for c in ("013002200204", CN_CODE_SPECIAL)
    ]
    assert await post(cli, notices=voids) == [[], []]
    answer = await lookup(cli, code="013002200204", number="81532753")
    assert answer["status"] == "cancelled"


async def test_the_electronic_void_rule_is_configurable(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path, admin_token: str
) -> None:
    """`cn.void.electronic` rests on §4.4's status table, drawn from vendor APIs, and on the
    type of a code ending `13`, which §1.2 marks [unconfirmed]: a deployment may lower it."""
    settings = Settings.from_env(
        {
            "INVOICE_DATA_DIR": str(tmp_path / "data"),
            "INVOICE_RULE_SEVERITY": "cn.void.electronic=warning",
        }
    )
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
    cli = await aiohttp_client(create_app(settings), headers=bearer(token))
    assert await post(cli, [cn_invoice()]) == [[]]
    key = {"invoice_code": CN_CODE_E, "invoice_number": "81532753"}
    assert await post(cli, notices=[cancel(1, key=key)]) == [[]]
    answer = await lookup(cli, code=CN_CODE_E, number="81532753")
    assert answer["status"] == "cancelled"


async def test_legacy_layout_codes_are_refused_and_motor_vehicle_codes_typed(cli: Client) -> None:
    """cn-invoice §1.4: the legacy 12-digit layout has "digit 1: 1 = state tax, 2 = local
    tax ... 8 industry"; such invoices "are not verifiable through the VAT platform"; §1.2:
    "first digit not `0` and digit 8 = `2` → 机动车销售统一发票 ..., type `03`"."""
    local_tax = cn_invoice("81532754", invoice_code="244031920011", type_code="03")
    motor = cn_invoice("81532755", invoice_code="144031920011", type_code=None, check_code=None)
    assert await post(cli, [local_tax, motor]) == [["cn.code.unsupported_type"], []]
    answer = await lookup(
        cli, code="144031920011", number="81532755", amount="205.30", issued_on="2023-03-23"
    )
    assert (answer["status"], answer["invoice"]["type_code"]) == ("valid", "03")


async def test_a_qr_whose_type_contradicts_its_code_is_refused(cli: Client) -> None:
    """cn-invoice §3.2: field 1 is the type code; §1.5: the code implies one
    (`013002200211` ends in `11`: type 10). §6.3 flags `type_mismatch`; a QR that says
    01 (special) for an ordinary e-invoice's code is not that invoice's QR."""
    assert await post(cli, [cn_invoice()]) == [[]]
    forged = QR_E.replace("01,10,", "01,01,", 1)
    resp = await cli.post("/api/v1/verify/qr-text", json={"payload": forged})
    body = await resp.json()
    assert body["error"]["code"] == "invalid_invoice_qr", body
    [violation] = body["error"]["details"]["violations"]
    assert (violation["rule"], violation["detail"]) == (
        "cn.qr.type_mismatch",
        "QR type 01, the code implies 10",
    )
    digital_paper = "01,32,013002200211,81532753,205.30,20230323,,0816"
    resp = await cli.post("/api/v1/verify/qr-text", json={"payload": digital_paper})
    assert "error" not in await resp.json() or (await resp.json())["error"] is None
