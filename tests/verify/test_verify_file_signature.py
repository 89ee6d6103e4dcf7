"""The seller signature of a file checked with `POST /api/v1/verify/file`, with trust anchors
configured (issue 17, "check its seller signature against the trust anchors"), exactly as
intake checks it (docs/vn-rules.md §5.8: "the verifier must accept both" algorithms; "Seller
certificate subject carries the MST ... compare it with `NBan/MST`")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lxml import etree

from tests.conftest import Client
from tests.factories import package, vn_invoice
from tests.pki import Pki
from tests.verify.test_xml_signatures import (  # noqa: F401  (fixtures)
    anchors_file,
    pki,
    seller_signs,
    settings,
)
from tests.xml_factories import hdon, signed_xml_package

URL = "/api/v1/verify/file"
XML = {"Content-Type": "application/xml"}


def signed_file(pki: Pki, **options: Any) -> bytes:  # noqa: F811
    element = seller_signs(pki, **options)(hdon(vn_invoice(1)), vn_invoice(1))
    return bytes(etree.tostring(element, encoding="UTF-8"))


async def check(cli: Client, body: bytes) -> dict[str, Any]:
    resp = await cli.post(URL, data=body, headers=XML)
    answer: dict[str, Any] = await resp.json()
    assert resp.status == 200, answer
    return answer


@pytest.fixture
async def loaded(cli: Client, pki: Pki) -> Client:  # noqa: F811
    body = signed_xml_package([vn_invoice(1)], seller_signs(pki))
    resp = await cli.post("/api/v1/packages", data=body, headers=XML)
    assert (await resp.json())["accepted"] == 1, await resp.text()
    return cli


async def test_a_signed_file_as_indexed(loaded: Client, pki: Pki) -> None:  # noqa: F811
    answer = await check(loaded, signed_file(pki))
    assert answer["status"] == "valid"
    assert answer["signature"] == {"status": "valid", "violations": []}


async def test_a_file_changed_after_signing(loaded: Client, pki: Pki) -> None:  # noqa: F811
    answer = await check(loaded, signed_file(pki, tamper=True))
    assert answer["signature"]["status"] == "invalid"
    assert [v["rule"] for v in answer["signature"]["violations"]] == ["vn.signature.invalid"]
    assert answer["status"] == "mismatch"
    assert [m["field"] for m in answer["mismatches"]] == ["total_amount"]


async def test_a_certificate_of_another_taxpayer(loaded: Client, pki: Pki) -> None:  # noqa: F811
    answer = await check(loaded, signed_file(pki, uid="MST:0102671977"))
    assert answer["signature"]["status"] == "invalid"
    assert [v["rule"] for v in answer["signature"]["violations"]] == [
        "vn.signature.tax_id_mismatch"]


async def test_unsigned_files(loaded: Client) -> None:
    bare = await check(loaded, etree.tostring(hdon(vn_invoice(1))))
    assert bare["signature"]["status"] == "unsigned"
    assert [v["rule"] for v in bare["signature"]["violations"]] == ["vn.signature.missing"]
    for body in (vn_invoice(1), package([vn_invoice(1)])):
        answer = await check(loaded, json.dumps(body).encode())
        assert answer["status"] == "valid"
        assert answer["signature"]["status"] == "unsigned"
        assert [v["rule"] for v in answer["signature"]["violations"]] == [
            "vn.signature.json_unsigned"]

