"""`POST /api/v1/verify/file` through the real app (issue 17, "check a file you received"):
the invoice XML (or JSON) a seller sent, parsed by the intake's parsers and compared field by
field, line by line, with what the index holds, on both stores (the lines come from the
originals store). Hostile files are refused with 4xx, never a 5xx."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from aiohttp import FormData
from lxml import etree

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, SELLER_2, cn_invoice, package, vn_invoice
from tests.verify.backend_apps import (  # the fixtures cli and settings, on each backend
    app_on_each_backend,  # noqa: F401
    settings_on_each_backend,  # noqa: F401
)
from tests.verify.test_intake_journal import maintenance
from tests.xml_factories import hdon, xml_package

URL = "/api/v1/verify/file"
XML = {"Content-Type": "application/xml"}
Edit = Callable[[etree._Element], None]


def invoice_file(invoice: dict[str, Any] | None = None, *, edit: Edit | None = None) -> bytes:
    """One HDon as a seller hands it to its buyer."""
    element = hdon(invoice or vn_invoice(1))
    if edit is not None:
        edit(element)
    return bytes(etree.tostring(element, encoding="UTF-8", xml_declaration=True))


def set_text(path: str, value: str) -> Edit:
    def edit(element: etree._Element) -> None:
        found = element.find(path)
        assert found is not None, path
        found.text = value

    return edit


LINE = "DLHDon/NDHDon/DSHHDVu/HHDVu"


async def load(cli: Client) -> None:
    """Invoices 1 and 2 as XML (their originals kept), 3 and a Chinese one as JSON."""
    resp = await cli.post("/api/v1/packages", data=xml_package([vn_invoice(1), vn_invoice(2)]),
                          headers=XML)
    assert (await resp.json())["accepted"] == 2, await resp.text()
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(3), cn_invoice()]))
    assert (await resp.json())["accepted"] == 2, await resp.text()


async def check(cli: Client, body: bytes, headers: dict[str, str] | None = None,
                expect: int = 200) -> dict[str, Any]:
    resp = await cli.post(URL, data=body, headers={**XML, **(headers or {})})
    answer: dict[str, Any] = await resp.json()
    assert resp.status == expect, answer
    return answer


def fields(answer: dict[str, Any]) -> list[str]:
    return [m["field"] for m in answer["mismatches"]]


async def test_the_file_as_indexed_is_valid(cli: Client) -> None:
    await load(cli)
    answer = await check(cli, invoice_file())
    assert answer["status"] == "valid"
    assert answer["mismatches"] == []
    assert answer["lines"] == {"compared": True, "reason": None, "count": 1}
    assert answer["signature"] == {"status": "not_checked", "reason": "no_trust_anchors",
                                   "violations": []}
    assert answer["file"]["format"] == "xml"
    assert answer["file"]["id"] == "vn:0100109106:1:C22TAA:1"
    assert answer["invoice"]["total_amount"] == "1100000"
    assert answer["invoice"]["seller_status"]["known"] is False  # as a lookup answers
    trail = await (await cli.get("/api/v1/admin/audit")).json()
    assert any(e["action"] == "verify" and e["target"] == "vn:0100109106:1:C22TAA:1"
               for e in trail["entries"])


async def test_every_changed_field_is_named(cli: Client) -> None:
    await load(cli)
    changed = vn_invoice(1, total_amount="1200000", buyer_tax_id=SELLER_2,
                         buyer_name="Someone else", issued_at="2022-05-16T09:30:00+07:00",
                         seller_name="Công ty Khác")

    def lines(element: etree._Element) -> None:
        set_text(f"{LINE}/THHDVu", "Hàng hóa khác")(element)
        set_text(f"{LINE}/ThTien", "999000.00")(element)
        set_text(f"{LINE}/TSuat", "8%")(element)

    answer = await check(cli, invoice_file(changed, edit=lines))
    assert answer["status"] == "mismatch"
    by_field = {m["field"]: (m["given"], m["recorded"]) for m in answer["mismatches"]}
    assert by_field == {
        "total_amount": ("1200000", "1100000"),
        "issued_on": ("2022-05-16", "2022-05-15"),
        "buyer_tax_id": (SELLER_2, BUYER),
        "seller_name": ("Công ty Khác", "Công ty Cổ phần Thử nghiệm"),
        "buyer_name": ("Someone else", "Chi nhánh Công ty TNHH Mua hàng"),
        "lines[1].name": ("Hàng hóa khác", "Dịch vụ tư vấn"),
        "lines[1].amount": ("999000", "1000000"),
        "lines[1].tax_rate": ("8%", "10%"),
    }


async def test_an_added_line_and_the_same_amount_written_otherwise(cli: Client) -> None:
    await load(cli)

    def add_line(element: etree._Element) -> None:
        set_text(f"{LINE}/ThTien", "1000000.000")(element)  # the same amount
        listed = element.find("DLHDon/NDHDon/DSHHDVu")
        assert listed is not None
        extra = etree.SubElement(listed, "HHDVu")
        etree.SubElement(extra, "TChat").text = "4"
        etree.SubElement(extra, "THHDVu").text = "Ghi chú"

    answer = await check(cli, invoice_file(edit=add_line))
    assert answer["status"] == "mismatch"
    assert fields(answer) == ["lines"]
    assert answer["mismatches"][0] == {"field": "lines", "given": "2 lines",
                                       "recorded": "1 lines"}


async def test_a_json_invoice_and_a_json_package(cli: Client) -> None:
    await load(cli)
    for body in (vn_invoice(3), package([vn_invoice(3)])):
        answer = await check(cli, json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
        assert answer["status"] == "valid", answer
        assert answer["file"]["format"] == "json"
        assert answer["lines"] == {"compared": False, "reason": "file_has_no_lines",
                                   "count": None}
    cn = await check(cli, json.dumps(cn_invoice(total_amount="217.00")).encode())
    assert cn["status"] == "mismatch"
    assert fields(cn) == ["total_amount"]
    assert cn["signature"]["status"] == "not_applicable"


async def test_an_xml_file_of_an_invoice_indexed_from_json(cli: Client) -> None:
    await load(cli)
    answer = await check(cli, invoice_file(vn_invoice(3)))
    assert answer["status"] == "valid"
    assert answer["lines"] == {"compared": False, "reason": "original_not_kept", "count": 1}


async def test_not_indexed_and_multipart(cli: Client) -> None:
    await load(cli)
    answer = await check(cli, invoice_file(vn_invoice(9)))
    assert answer["status"] == "not_found"
    assert answer["lines"]["reason"] == "invoice_not_found"
    form = FormData()
    form.add_field("note", "x")
    form.add_field("file", invoice_file(), filename="hd.xml", content_type="text/xml")
    resp = await cli.post(URL, data=form)
    assert resp.status == 200
    assert (await resp.json())["status"] == "valid"
    form = FormData()
    form.add_field("other", invoice_file(), filename="hd.xml")
    resp = await cli.post(URL, data=form)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "missing_file"


async def test_hostile_files_are_refused(cli: Client) -> None:
    await load(cli)
    two = xml_package([vn_invoice(1), vn_invoice(2)])
    bad_key = invoice_file(vn_invoice(1, series="C22TA"))
    cases = [
        (b"", 415, "unsupported_file"),
        (b"hello", 415, "unsupported_file"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><HDon/>', 422, "package.xml_dtd_forbidden"),
        (b"<HDon>", 400, "package.malformed_xml"),
        (b"<Foo/>", 422, "package.xml_envelope"),
        (b"<HDon/>", 422, "invalid_invoice"),
        (two, 422, "file_not_one_invoice"),
        (bad_key, 422, "invalid_invoice"),
        (b"[1]", 422, "package.malformed"),
        (b'{"invoices": 5}', 422, "package.id_invalid"),
        (b"{" * 100_000, 400, "malformed_json"),
        (b'{"scheme": "vn"}', 422, "invalid_invoice"),
        (b"\xef\xbb\xbf\xff\xfe<", 415, "unsupported_file"),
        (b"<HDon>" + b"<a>" * 100 + b"</a>" * 100 + b"</HDon>", 422, "package.xml_too_deep"),
    ]
    for body, status, code in cases:
        resp = await cli.post(URL, data=body, headers=XML)
        error = await resp.json()
        assert (resp.status, error["error"]["code"]) == (status, code), (body[:40], error)
    big = await cli.post(URL, data=io.BytesIO(b"<" + b" " * (11 * 1024 * 1024)), headers=XML)
    assert big.status == 413


async def test_a_stranger_learns_which_fields_differ_not_the_recorded_values(
        cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    changed = invoice_file(vn_invoice(1, buyer_name="Someone else"),
                           edit=set_text(f"{LINE}/THHDVu", "Hàng hóa khác"))
    stranger = await check(cli, changed, bearer(await make_key("verify")))
    assert stranger["status"] == "mismatch"
    assert {m["field"]: m["recorded"] for m in stranger["mismatches"]} == {
        "buyer_name": None, "lines[1].name": None}
    party = await check(cli, changed, bearer(await make_key("verify", [BUYER])))
    assert {m["field"]: m["recorded"] for m in party["mismatches"]} == {
        "buyer_name": "Chi nhánh Công ty TNHH Mua hàng", "lines[1].name": "Dịch vụ tư vấn"}
    intake = bearer(await make_key("intake", ["0101300842"]))
    assert (await cli.post(URL, data=invoice_file(), headers={**XML, **intake})).status == 403


async def test_during_an_outage_the_file_is_answered_as_a_lookup(cli: Client) -> None:
    await load(cli)
    await maintenance(cli, 60)
    found = await check(cli, invoice_file())
    assert (found["status"], found["source"], found["degraded"]) == ("valid", "replica", True)
    missing = await check(cli, invoice_file(vn_invoice(9)))
    assert missing["status"] == "unconfirmed"
    assert missing["gap_id"]
