"""Vietnamese XML packages through the real app: accepted, related, originals kept, and
hostile XML refused with nothing stored."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, package, vn_invoice, vn_key
from tests.xml_factories import tbao, xml_package

XML = {"Content-Type": "application/xml"}


async def post_xml(cli: Client, body: bytes, status: int = 200) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", data=body, headers=XML)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def status_of(cli: Client, number: int) -> str:
    resp = await cli.get("/api/v1/invoices/lookup", params={
        k: str(v) for k, v in vn_key(number).items()})
    answer: dict[str, Any] = await resp.json()
    return str(answer["status"])


async def test_xml_package_is_accepted_like_json(cli: Client) -> None:
    notice = await post_xml(cli, xml_package([vn_invoice(1), vn_invoice(2)],
                                             package_id="V0101300842XML1"))
    assert notice["package_id"] == "V0101300842XML1"
    assert notice["sender"] == "0101300842"
    assert notice["result"] == "accepted"
    resp = await cli.get("/api/v1/invoices/lookup", params={
        **{k: str(v) for k, v in vn_key(1).items()}, "total_amount": "1100000"})
    answer = await resp.json()
    assert answer["status"] == "valid"
    assert answer["invoice"]["issued_at"] == "2022-05-15T09:30:00+07:00"
    assert answer["invoice"]["seller_name"] == "Công ty Cổ phần Thử nghiệm"


async def test_replacement_adjustment_and_cancel_notice_in_xml(cli: Client) -> None:
    await post_xml(cli, xml_package([vn_invoice(n) for n in (1, 2, 3)], package_id="X-1"))
    notice = await post_xml(cli, xml_package(
        [vn_invoice(4, kind="replacement", original=vn_key(1)),
         vn_invoice(5, kind="adjustment", original=vn_key(2), amount_before_tax="-10",
                    tax_amount="-1", total_amount="-11")],
        notices=[tbao(SELLER, [{**vn_key(3), "reason": "Hủy do sai thông tin"},
                               {**vn_key(2), "nature": "4"}])],
        package_id="X-2"))
    assert notice["result"] == "accepted", notice
    assert [await status_of(cli, n) for n in (1, 2, 3, 4)] == [
        "replaced", "adjusted", "cancelled", "valid"]


async def test_date_only_issue_time_and_misplaced_code(cli: Client) -> None:
    inv = vn_invoice(1, issued_at="2022-05-15T00:00:00+07:00")
    notice = await post_xml(cli, xml_package([inv], misplace_code=True))
    assert notice["result"] == "accepted", notice
    resp = await cli.get("/api/v1/invoices/lookup",
                         params={"authority_code": inv["authority_code"]})
    assert (await resp.json())["invoice"]["issued_on"] == "2022-05-15"


async def test_missing_required_element_is_named(cli: Client) -> None:
    notice = await post_xml(cli, xml_package([vn_invoice(1, seller_tax_id=None)],
                                             sender="0101300842"))
    errors = notice["items"][0]["errors"]
    assert [(e["rule"], e["field"]) for e in errors] == [
        ("invoice.field.required", "seller_tax_id")]


async def test_original_xml_only_for_parties(cli: Client, make_key: KeyMaker) -> None:
    await post_xml(cli, xml_package([vn_invoice(1)]))
    await cli.post("/api/v1/packages", json=package([vn_invoice(2)]))
    url = "/api/v1/invoices/vn:0100109106:1:C22TAA:1/original.xml"
    resp = await cli.get(url)
    assert resp.status == 200
    assert resp.content_type == "application/xml"
    body = await resp.read()
    assert b"<KHHDon>C22TAA</KHHDon>" in body
    assert "Dịch vụ tư vấn".encode() in body
    seller = await make_key("verify", [SELLER])
    assert (await cli.get(url, headers=bearer(seller))).status == 200
    stranger = await make_key("verify")
    refused = await cli.get(url, headers=bearer(stranger))
    assert refused.status == 404  # as for an invoice that does not exist: tests/verify/access
    assert (await refused.json())["error"]["code"] == "invoice_not_found"
    json_only = await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:2/original.xml")
    assert (await json_only.json())["error"]["code"] == "original_not_kept"
    missing = await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:9/original.xml")
    assert missing.status == 404


async def test_a_signed_invoice_is_not_refused_for_its_signature_namespace(cli: Client) -> None:
    """Every real invoice carries DSCKS/NBan/ds:Signature (spec §5.1, §5.8); the namespace
    check must let XML-DSig through (signatures are only verified with trust anchors)."""
    signature = (b'<NBan><Signature xmlns="http://www.w3.org/2000/09/xmldsig#">'
                 b"<SignedInfo/></Signature></NBan>")
    body = xml_package([vn_invoice(1)]).replace(b"<NBan/>", signature)
    assert body.count(b"xmldsig#") == 1
    notice = await post_xml(cli, body)
    assert notice["result"] == "accepted", notice


XXE = (b'<?xml version="1.0"?><!DOCTYPE TDiep [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b"<TDiep><TTChung><MTDiep>&x;</MTDiep></TTChung></TDiep>")
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">'.encode()
                     if n > 1 else b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">'
                     for n in range(1, 10))
          + b"]><TDiep><TTChung><MTDiep>&lol9;</MTDiep></TTChung></TDiep>")
DEEP = b"<TDiep>" + b"<a>" * 100 + b"</a>" * 100 + b"</TDiep>"
WRONG_NS = xml_package([vn_invoice(1)]).replace(b"<TDiep>", b'<TDiep xmlns="urn:evil">')


@pytest.mark.parametrize(("body", "status", "code"), [
    (XXE, 422, "package.xml_dtd_forbidden"),
    (LAUGHS, 422, "package.xml_dtd_forbidden"),
    (DEEP, 422, "package.xml_too_deep"),
    (WRONG_NS, 422, "package.xml_namespace"),
    (b"<TDiep><TTChung>", 400, "package.malformed_xml"),
    (b"<HDon/>", 422, "package.xml_envelope"),
    (xml_package([vn_invoice(1)], count=3), 422, "package.count_mismatch"),
])
async def test_hostile_or_broken_xml_is_refused(cli: Client, body: bytes, status: int,
                                                code: str) -> None:
    error = await post_xml(cli, body, status=status)
    assert error["error"]["code"] == code
    assert await status_of(cli, 1) == "not_found"


async def test_fifty_megabytes_is_refused_before_parsing(cli: Client) -> None:
    body = b"<TDiep>" + b"<x/>" * (50 * 1024 * 1024 // 4) + b"</TDiep>"
    resp = await cli.post("/api/v1/packages", data=io.BytesIO(body), headers=XML)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
