"""Chains through the real app (issue 17 item 8): the transition table of indexer/chain.py
decides what a replacement, an adjustment or a cancel notice may do, and a lookup answers the
state it leaves. vn-einvoice §5.6 and §8 step 2.3-2.5; docs/rules.md "Chain transitions"."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import cancel, package, vn_invoice, vn_key


async def post(cli: Client, body: dict[str, Any]) -> list[list[str]]:
    resp = await cli.post("/api/v1/packages", json=body)
    assert resp.status == 200, await resp.text()
    notice: dict[str, Any] = await resp.json()
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


async def status_of(cli: Client, number: int, headers: dict[str, str] | None = None) -> str:
    resp = await cli.get(
        "/api/v1/invoices/lookup",
        params={k: str(v) for k, v in vn_key(number).items()},
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["status"])


async def test_an_adjusted_invoice_cannot_be_cancelled(cli: Client) -> None:
    """Cancelling the original alone would leave its adjustment answering `valid`."""
    assert await post(cli, package([vn_invoice(1)])) == [[]]
    adjustment = vn_invoice(2, kind="adjustment", original=vn_key(1))
    assert await post(cli, package([adjustment])) == [[]]
    assert await post(cli, package(notices=[cancel(1)])) == [["chain.cancel.has_adjustment"]]
    assert (await status_of(cli, 1), await status_of(cli, 2)) == ("adjusted", "valid")


async def test_a_replacement_cannot_be_cancelled(cli: Client, make_key: KeyMaker) -> None:
    """Its original would stay `replaced` by a cancelled invoice for good; an error in a
    replacement is corrected by replacing it again, which the table allows."""
    assert await post(cli, package([vn_invoice(1)])) == [[]]
    assert await post(cli, package([vn_invoice(2, kind="replacement", original=vn_key(1))])) == [[]]
    assert await post(cli, package(notices=[cancel(2)])) == [["chain.cancel.is_replacement"]]
    assert await post(cli, package([vn_invoice(3, kind="replacement", original=vn_key(2))])) == [[]]
    verifier = bearer(await make_key("verify"))
    statuses = [await status_of(cli, n, verifier) for n in (1, 2, 3)]
    assert statuses == ["replaced", "replaced", "valid"]


async def test_a_replacement_dated_before_its_original_is_refused(cli: Client) -> None:
    assert await post(cli, package([vn_invoice(1, issued_at="2022-05-15T09:30:00+07:00")])) == [[]]
    early = vn_invoice(
        2, kind="replacement", original=vn_key(1), issued_at="2022-05-10T09:30:00+07:00"
    )
    assert await post(cli, package([early])) == [["chain.replacement.before_original"]]
    assert await status_of(cli, 1) == "valid"
