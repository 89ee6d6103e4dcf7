"""The invoice lines as received (issue 17, "the detail the portals show" to a party):
`GET /api/v1/invoices/{id}/lines`, parsed from the stored original (vn-einvoice §5.4:
"`TChat` line nature ... `THHDVu` item name ... `DVTinh, SLuong, DGia` unit, quantity, unit
price ... `ThTien` amount before VAT ... `TSuat` VAT rate code"), on both stores. Only the
invoice's parties and admins; anyone else is answered as for an invoice that does not
exist."""

from __future__ import annotations

from lxml import etree

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, SELLER, package, vn_invoice
from tests.verify.backend_apps import (  # the fixtures cli and settings, on each backend
    app_on_each_backend,  # noqa: F401
    settings_on_each_backend,  # noqa: F401
)
from tests.xml_factories import hdon

ID = f"vn:{SELLER}:1:C22TAA:1"
GOODS = """<HHDVu><TChat>1</TChat><STT>2</STT><MHHDVu>TH-01</MHHDVu>
<THHDVu>Thép cuộn</THHDVu><DVTinh>kg</DVTinh><SLuong>12.500</SLuong><DGia>20000</DGia>
<ThTien>250000.00</ThTien><TSuat>kct</TSuat></HHDVu>"""


def package_with_goods() -> bytes:
    """Invoice 1 with a second, goods line (the factory's first is a service line)."""
    element = hdon(vn_invoice(1))
    listed = element.find("DLHDon/NDHDon/DSHHDVu")
    assert listed is not None
    listed.append(etree.fromstring(GOODS))
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><TDiep><TTChung><PBan>2.0.1</PBan>'
        "<MNGui>0101300842</MNGui><MNNhan>TCT</MNNhan><MLTDiep>200</MLTDiep>"
        "<MTDiep>V0101300842LINES1</MTDiep><MST>0100109106</MST><SLuong>1</SLuong></TTChung>"
        "<DLieu>" + etree.tostring(element, encoding="unicode") + "</DLieu></TDiep>"
    )
    return body.encode()


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", data=package_with_goods(),
                          headers={"Content-Type": "application/xml"})
    assert (await resp.json())["accepted"] == 1, await resp.text()
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(3)]))
    assert (await resp.json())["accepted"] == 1


SERVICE_LINE = {"number": "1", "nature": "1", "code": None, "name": "Dịch vụ tư vấn",
                "unit": None, "quantity": None, "unit_price": None, "discount_rate": None,
                "discount_amount": None, "amount": "1000000", "tax_rate": "10%"}
GOODS_LINE = {"number": "2", "nature": "1", "code": "TH-01", "name": "Thép cuộn",
              "unit": "kg", "quantity": "12.5", "unit_price": "20000", "discount_rate": None,
              "discount_amount": None, "amount": "250000", "tax_rate": "KCT"}


async def test_a_party_reads_the_lines_as_received(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    for headers in ({}, bearer(await make_key("verify", [BUYER])),
                    bearer(await make_key("audit", [SELLER]))):
        resp = await cli.get(f"/api/v1/invoices/{ID}/lines", headers=headers)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"id": ID, "lines": [SERVICE_LINE, GOODS_LINE]}
    trail = await (await cli.get("/api/v1/admin/audit")).json()
    assert any(e["action"] == "lines.read" and e["outcome"] == "ok" for e in trail["entries"])


async def test_anyone_else_is_answered_as_for_no_invoice(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = bearer(await make_key("verify"))
    other = await cli.get(f"/api/v1/invoices/{ID}/lines", headers=stranger)
    absent = await cli.get(f"/api/v1/invoices/vn:{SELLER}:1:C22TAA:9/lines", headers=stranger)
    assert other.status == absent.status == 404
    assert (await other.json())["error"] == {
        **(await absent.json())["error"], "details": {"id": ID}}
    assert (await cli.get("/api/v1/invoices/nonsense/lines")).status == 400


async def test_an_invoice_received_as_json_has_no_lines(cli: Client) -> None:
    await load(cli)
    resp = await cli.get(f"/api/v1/invoices/vn:{SELLER}:1:C22TAA:3/lines")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "original_not_kept"
