"""The XML data standard's required elements and `NLap` through the real app (issue 17,
item 7). vn-einvoice §8 step 1.2: "required fields present per the data standard"."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from tests.conftest import Client
from tests.factories import vn_invoice, vn_key
from tests.xml_factories import xml_package

XML = {"Content-Type": "application/xml"}
CASH = {"series": "C22MAA", "authority_code": "M1-22-ABCDE-00000000001"}


def edited(invoice: dict[str, Any], path: str, text: str | None = None) -> bytes:
    """A package of `invoice` whose element at `path` (below HDon) is removed, or given
    `text`."""
    envelope = etree.fromstring(xml_package([invoice]))
    found = envelope.find(f"DLieu/HDon/{path}")
    assert found is not None, path
    if text is None:
        parent = found.getparent()
        assert parent is not None
        parent.remove(found)
    else:
        found.text = text
    return bytes(etree.tostring(envelope))


async def post(cli: Client, body: bytes) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", data=body, headers=XML)
    assert resp.status == 200, await resp.text()
    [item] = (await resp.json())["items"]
    return dict(item)


async def lookup(cli: Client, **key: Any) -> dict[str, Any]:
    params = {k: str(v) for k, v in vn_key(1, **key).items()}
    answer: dict[str, Any] = await (await cli.get("/api/v1/invoices/lookup", params=params)).json()
    return answer


@pytest.mark.parametrize(
    "path",
    [
        "DLHDon/TTChung/PBan",  # §5.2: PBan "yes"
        "DLHDon/TTChung/THDon",  # §5.2: the invoice's name
        "DLHDon/NDHDon/NBan/Ten",  # §5.2: the seller's name
        "DLHDon/NDHDon/NBan/DChi",  # §5.2: the seller's address
        "DLHDon/NDHDon/DSHHDVu/HHDVu",  # §5.1: "DSHHDVu/HHDVu+"
        "DLHDon/NDHDon/TToan/TgTTTBChu",  # §5.5: "total payable in words (req, 255)"
    ],
)
async def test_an_hdon_without_a_required_element_is_refused(cli: Client, path: str) -> None:
    item = await post(cli, edited(vn_invoice(1), path))
    assert (item["result"], [(e["rule"], e["field"]) for e in item["errors"]]) == (
        "rejected",
        [("vn.xml.element_required", path)],
    )
    assert (await lookup(cli))["status"] == "not_found"


async def test_a_cash_register_hdon_without_dvtte_is_accepted_as_vnd(cli: Client) -> None:
    """§6.3: the cash-register TTChung is "reduced to `PBan, THDon, KHMSHDon, KHHDon, SHDon,
    NLap, TTHDLQuan, TTKhac`": no DVTTe (unconfirmed, hence a warning)."""
    item = await post(cli, edited(vn_invoice(1, **CASH), "DLHDon/TTChung/DVTTe"))
    assert item["result"] == "accepted", item
    assert [w["rule"] for w in item["warnings"]] == ["vn.cash_register.currency_default"]
    answer = await lookup(cli, series="C22MAA")
    assert (answer["status"], answer["invoice"]["currency"]) == ("valid", "VND")


async def test_a_non_cash_register_hdon_without_dvtte_is_refused(cli: Client) -> None:
    item = await post(cli, edited(vn_invoice(1), "DLHDon/TTChung/DVTTe"))
    assert [(e["rule"], e["field"]) for e in item["errors"]] == [
        ("invoice.field.required", "currency")
    ]


async def test_nlap_with_its_offset_is_accepted(cli: Client) -> None:
    """§1.4: `NLap` is "`YYYY-MM-DD[Thh:mm:ss]`" in Vietnam time; written with `+07:00` it
    is the same time, not `...+07:00+07:00`."""
    item = await post(
        cli, edited(vn_invoice(1), "DLHDon/TTChung/NLap", "2022-05-15T10:15:00+07:00")
    )
    assert item["result"] == "accepted", item
    answer = await lookup(cli)
    assert answer["invoice"]["issued_at"] == "2022-05-15T10:15:00+07:00"
