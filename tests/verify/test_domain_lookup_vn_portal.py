"""What the GDT portal's lookup shows and asks that ours does too (issue 17, 'Missing'):
whether an invoice carries the GDT's code (series C) or is a no-code invoice (series K), the
tax amount as a field to match, and `tgtthue` (tax amount) read from a lookup URL in a QR."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.factories import cn_invoice, package, vn_invoice, vn_key

NO_CODE = vn_invoice(2, series="K22TAA", authority_code=None)


@pytest.fixture
async def loaded(cli: Client) -> Client:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(), NO_CODE, cn_invoice()]))
    assert (await resp.json())["result"] == "accepted", await resp.text()
    return cli


async def _lookup(cli: Client, **params: Any) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


@pytest.mark.parametrize(
    ("key", "issued"),
    [
        (vn_key(1), True),
        (vn_key(2, series="K22TAA"), False),
        ({"code": "013002200211", "number": "81532753"}, None),
    ],
)
async def test_code_issued_or_not(loaded: Client, key: dict[str, Any], issued: bool | None) -> None:
    answer = await _lookup(loaded, **key)
    assert answer["status"] == "valid"
    assert answer["invoice"]["code_issued"] is issued


@pytest.mark.parametrize(
    ("tax", "status", "mismatches"),
    [
        ("100000", "valid", []),
        ("100000.00", "valid", []),
        ("100001", "mismatch", [{"field": "tax_amount", "given": "100001", "recorded": "100000"}]),
    ],
)
async def test_tax_amount_is_matched(
    loaded: Client, tax: str, status: str, mismatches: list[dict[str, str]]
) -> None:
    answer = await _lookup(loaded, **vn_key(1), tax_amount=tax)
    assert answer["status"] == status
    assert answer["mismatches"] == mismatches


async def test_tax_amount_that_is_not_an_amount_is_400(loaded: Client) -> None:
    resp = await loaded.get(
        "/api/v1/invoices/lookup",
        params={**{k: str(v) for k, v in vn_key(1).items()}, "tax_amount": "ten"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["parameter"] == "tax_amount"


@pytest.mark.parametrize(("tax", "status"), [("100000", "valid"), ("99999", "mismatch")])
async def test_tgtthue_from_a_lookup_url(loaded: Client, tax: str, status: str) -> None:
    url = (
        "https://hoadondientu.gdt.gov.vn/tra-cuu?nbmst=0100109106&khmshdon=1"
        f"&khhdon=C22TAA&shdon=1&tgtttbso=1100000&tgtthue={tax}&nlap=2022-05-15"
    )
    resp = await loaded.post("/api/v1/verify/qr-text", json={"payload": url})
    body = await resp.json()
    assert body["payload"]["tax_amount"] == tax
    assert body["result"]["status"] == status
    fields = [m["field"] for m in body["result"]["mismatches"]]
    assert fields == ([] if status == "valid" else ["tax_amount"])
