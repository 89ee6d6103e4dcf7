"""Chinese invoices at intake through the real app (issue 17, item 10, intake side)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client
from tests.factories import CN_CODE_E, cancel, cn_digital, cn_invoice, package

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
