"""Cancel notices (04/SS-HĐĐT) through the real app: the step-1 rules of their sender, and
how a notice is counted and read (issue 17, items 3 and 9)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.factories import SELLER, cancel, package, vn_invoice, vn_key
from tests.indexer.registries import ENDED_PROVIDER, registry
from tests.xml_factories import tbao, xml_package

XML = {"Content-Type": "application/xml"}


async def post(cli: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", json=body)
    assert resp.status == 200, await resp.text()
    notice: dict[str, Any] = await resp.json()
    return notice


async def status_of(cli: Client, number: int) -> str:
    resp = await cli.get(
        "/api/v1/invoices/lookup", params={k: str(v) for k, v in vn_key(number).items()}
    )
    return str((await resp.json())["status"])


def rules(notice: dict[str, Any]) -> list[list[str]]:
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


@pytest.mark.parametrize(
    ("sender", "rule"),
    [
        ("0102671977", "registry.provider.unknown"),
        (ENDED_PROVIDER, "registry.provider.contract_invalid"),
    ],
    ids=["unknown sender", "contract ended"],
)
async def test_cancel_notice_from_a_sender_without_a_valid_contract_is_refused(
    cli: Client, sender: str, rule: str
) -> None:
    """vn-einvoice §8 step 1.5: "the transmission provider's (T-VAN) contract valid"; a
    notice is sent like any package (§6.5, message 300), so the check is the same."""
    resp = await cli.post("/api/v1/admin/registry", json=registry())
    assert resp.status == 200, await resp.text()
    assert rules(await post(cli, package([vn_invoice(1)]))) == [[]]
    body = package(notices=[cancel(1)])
    body["sender"] = sender
    notice = await post(cli, body)
    assert (notice["result"], rules(notice)) == ("rejected", [[rule]])
    xml = await cli.post(
        "/api/v1/packages",
        data=xml_package([], sender=sender, notices=[tbao(SELLER, [vn_key(1)])]),
        headers=XML,
    )
    assert rules(await xml.json()) == [[rule]]
    assert await status_of(cli, 1) == "valid"
    assert rules(await post(cli, package(notices=[cancel(1)]))) == [[]]
    assert await status_of(cli, 1) == "cancelled"
