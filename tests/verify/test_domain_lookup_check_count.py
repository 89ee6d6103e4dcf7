"""The check count (查验次数) the invoice's parties see: how often the invoice was looked up,
from the audit trail, this check included; strangers and admins do not get it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, SELLER, package, vn_invoice, vn_key

KEY = {k: str(v) for k, v in vn_key(1).items()}


async def _lookup(cli: Client, headers: dict[str, str]) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params=KEY, headers=headers)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_parties_see_how_often_the_invoice_was_checked(
    cli: Client, make_key: KeyMaker
) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice()]))
    assert (await resp.json())["result"] == "accepted"
    seller = bearer(await make_key("verify", [SELLER]))
    buyer = bearer(await make_key("audit", [BUYER]))
    stranger = bearer(await make_key("verify"))
    assert (await _lookup(cli, seller))["check_count"] == 1
    assert (await _lookup(cli, seller))["check_count"] == 2
    assert "check_count" not in await _lookup(cli, stranger)
    assert "check_count" not in await _lookup(cli, {})  # the admin key
    assert (await _lookup(cli, buyer))["check_count"] == 5
    # a miss is not a check of this invoice
    other = {**KEY, "number": "2"}
    await cli.get("/api/v1/invoices/lookup", params=other, headers=stranger)
    assert (await _lookup(cli, seller))["check_count"] == 6
