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


#: Senders without a valid provider contract, and the rule each breaks.
SENDERS = pytest.mark.parametrize(
    ("sender", "rule"),
    [
        ("0102671977", "registry.provider.unknown"),
        (ENDED_PROVIDER, "registry.provider.contract_invalid"),
    ],
    ids=["unknown sender", "contract ended"],
)


async def registered_with_invoice_1(cli: Client) -> None:
    resp = await cli.post("/api/v1/admin/registry", json=registry())
    assert resp.status == 200, await resp.text()
    assert rules(await post(cli, package([vn_invoice(1)]))) == [[]]


@SENDERS
async def test_cancel_notice_from_a_sender_without_a_valid_contract_is_refused(
    cli: Client, sender: str, rule: str
) -> None:
    """vn-einvoice §8 step 1.5: "the transmission provider's (T-VAN) contract valid"; a
    notice is sent like any package (§6.5, message 300), so the check is the same."""
    await registered_with_invoice_1(cli)
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


# --- item 9: 04/SS counting and reasons --------------------------------------------------------


async def post_xml(cli: Client, body: bytes, status: int = 200) -> dict[str, Any]:
    resp = await cli.post("/api/v1/packages", data=body, headers=XML)
    assert resp.status == status, await resp.text()
    notice: dict[str, Any] = await resp.json()
    return notice


async def test_one_notice_cancelling_two_invoices_counts_once(cli: Client) -> None:
    """vn-einvoice §6.1: "`SLuong` = number of data items (invoices) in `DLieu`": the 04/SS
    TBao is one item, whatever number of invoices it lists (§6.5 `DSHDon/HDon+`)."""
    await post(cli, package([vn_invoice(1), vn_invoice(2)]))
    two_rows = [tbao(SELLER, [vn_key(1), vn_key(2)])]
    refused = await post_xml(cli, xml_package([], notices=two_rows, count=2), status=422)
    assert refused["error"]["code"] == "package.count_mismatch"
    assert [await status_of(cli, n) for n in (1, 2)] == ["valid", "valid"]
    notice = await post_xml(cli, xml_package([], notices=two_rows, count=1))
    assert (notice["result"], notice["declared_count"], rules(notice)) == ("accepted", 1, [[], []])
    assert [await status_of(cli, n) for n in (1, 2)] == ["cancelled", "cancelled"]


async def test_a_notice_of_explanations_only_is_accepted(cli: Client) -> None:
    """§6.5: `TCTBao` "`4` explain (giải trình)": nothing to cancel, nothing refused. The
    notice is one item of the package (kind `explain`), which changes no invoice."""
    await post(cli, package([vn_invoice(1)]))
    explain = [tbao(SELLER, [{**vn_key(1), "nature": "4"}])]
    notice = await post_xml(cli, xml_package([], notices=explain, count=1))
    assert (notice["result"], rules(notice)) == ("accepted", [[]])
    [item] = notice["items"]
    assert (item["item"], item["notice_id"], item["key"]) == ("notice", "04SS-2022-07", None)
    assert await status_of(cli, 1) == "valid"


@SENDERS
async def test_a_notice_of_explanations_only_goes_through_the_sender_checks(
    cli: Client, sender: str, rule: str
) -> None:
    """vn-einvoice §8 step 1.5: "the transmission provider's (T-VAN) contract valid", for
    whatever a sender sends: a 04/SS notice (§6.5, message 300) that only explains
    (`TCTBao` 4) or only announces an adjustment or replacement (2, 3) is refused from a
    sender without a valid contract, as a cancellation is, in XML and in JSON."""
    await registered_with_invoice_1(cli)
    rows = [{**vn_key(1), "nature": "4"}, {**vn_key(1), "nature": "2"}]
    body = xml_package([], sender=sender, notices=[tbao(SELLER, rows)], count=1)
    notice = await post_xml(cli, body)
    assert (notice["result"], rules(notice)) == ("rejected", [[rule]])
    explain = {"kind": "explain", "notice_id": "04SS-2022-08", "reason": "giải trình"}
    json_body = package(notices=[explain])
    json_body["sender"] = sender
    notice = await post(cli, json_body)
    assert (notice["result"], rules(notice)) == ("rejected", [[rule]])
    assert rules(await post(cli, package(notices=[explain]))) == [[]]
    assert await status_of(cli, 1) == "valid"


@pytest.mark.parametrize("reason", ["   ", "\u200b", "\ufeff"])
async def test_a_reason_that_shows_nothing_is_refused(cli: Client, reason: str) -> None:
    """§8 step 2.5: cancellation needs "a reason `LDo`"."""
    await post(cli, package([vn_invoice(1)]))
    notice = await post(cli, package(notices=[cancel(1, reason=reason)]))
    assert rules(notice) == [["notice.reason.required"]]
    rows = [tbao(SELLER, [{**vn_key(1), "reason": reason}])]
    notice = await post_xml(cli, xml_package([], notices=rows, count=1))
    assert rules(notice) == [["notice.reason.required"]]
    assert await status_of(cli, 1) == "valid"
