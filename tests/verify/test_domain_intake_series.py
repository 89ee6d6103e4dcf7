"""Impossible Vietnamese series, codes, numbers and ids are refused through the real app
(issue 17, item 6). Each case quotes the spec section it rests on."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client
from tests.factories import package, vn_invoice
from tests.xml_factories import xml_package

UNCODED = {"authority_code": None}
CASES: list[tuple[str, dict[str, Any], str]] = [
    # §1.2 / §2.2: "Cash-register invoices (series `C..M..`)": an M series carries a code
    ("K25MAB", vn_invoice(1, series="K22MAB", **UNCODED), "vn.series.kind_needs_code"),
    # §1.2: "`L` issued by the tax authority per occurrence", with its code
    ("K25LAB", vn_invoice(2, series="K22LAB", **UNCODED), "vn.series.kind_needs_code"),
    # §2.1: a coded invoice's MCCQT is 34 hex; §2.2: the M1-YY-... form is the cash register's
    (
        "M code on T",
        vn_invoice(3, authority_code="M1-22-ABCDE-00000000003"),
        "vn.authority_code.cash_register_series",
    ),
    # §1.1: "6 | ... internal transfer delivery note, agent-consignment delivery note"
    ("template 6, letter T", vn_invoice(4, template="6"), "vn.series.template_mismatch"),
    # §1.2: "`N` e-internal transfer delivery note; `B` e-agent-consignment delivery note"
    ("template 1, letter N", vn_invoice(5, series="C22NAA"), "vn.series.template_mismatch"),
    (
        "template 1, letter B",
        vn_invoice(6, series="K22BAA", **UNCODED),
        "vn.series.template_mismatch",
    ),
    # §1.2: positions 2-3 are "`21`…`99`"
    (
        "C20TAA",
        vn_invoice(7, series="C20TAA", issued_at="2020-05-15T09:30:00+07:00"),
        "vn.series.year_out_of_range",
    ),
    # §1.3: "max 8 digits"; a 9-character SHDon is out of range, zeros or not
    (
        "SHDon 000000001",
        {**vn_invoice(8, series="K22TAA", **UNCODED), "number": "000000001"},
        "vn.number.out_of_range",
    ),
    # §3: the 12-digit form is a personal identification number; `000` is no province
    ("personal id of zeros", vn_invoice(9, buyer_tax_id="000000000000"), "vn.tax_id.invalid"),
]


async def test_each_impossible_invoice_is_refused_with_its_rule(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([c[1] for c in CASES]))
    notice = await resp.json()
    found = {
        c[0]: [e["rule"] for e in item["errors"]]
        for c, item in zip(CASES, notice["items"], strict=True)
    }
    assert found == {name: [rule] for name, _, rule in CASES}
    assert notice["result"] == "rejected"


async def test_possible_neighbours_are_accepted(cli: Client) -> None:
    resp = await cli.post(
        "/api/v1/packages",
        json=package(
            [
                vn_invoice(1, template="6", series="C22NAA"),
                vn_invoice(2, template="6", series="K22BAA", **UNCODED),
                vn_invoice(3, series="C22MAA", authority_code="M1-22-ABCDE-00000000003"),
                vn_invoice(4, buyer_tax_id="001099012345"),
            ]
        ),
    )
    notice = await resp.json()
    assert notice["result"] == "accepted", notice


async def test_a_nine_character_shdon_in_xml_is_refused(cli: Client) -> None:
    body = xml_package([vn_invoice(1, series="K22TAA", **UNCODED)])
    body = body.replace(b"<SHDon>1</SHDon>", b"<SHDon>000000001</SHDon>")
    resp = await cli.post(
        "/api/v1/packages", data=body, headers={"Content-Type": "application/xml"}
    )
    [item] = (await resp.json())["items"]
    assert [(e["rule"], e["detail"]) for e in item["errors"]] == [
        ("vn.number.out_of_range", "000000001")
    ]
