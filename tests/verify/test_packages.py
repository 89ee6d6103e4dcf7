"""POST /api/v1/packages through the real app and a real SQLite file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Client
from tests.factories import cancel, cn_digital, cn_invoice, package, vn_invoice, vn_key
from verify.app import create_app
from verify.settings import Settings

URL = "/api/v1/packages"


async def post(cli: Client, body: Any, status: int = 200) -> dict[str, Any]:
    resp = await cli.post(URL, json=body)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def lookup(cli: Client, **params: Any) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_accepted_package_notice_and_invoices_findable(cli: Client) -> None:
    body = package([vn_invoice(1), cn_invoice(), cn_digital()], package_id="PKG-20220515-000001")
    notice = await post(cli, body)
    assert notice["package_id"] == "PKG-20220515-000001"
    assert notice["sender"] == body["sender"]
    assert notice["result"] == "accepted"
    assert (notice["accepted"], notice["rejected"], notice["declared_count"]) == (3, 0, 3)
    assert notice["received_at"].endswith("Z")
    assert [i["id"] for i in notice["items"]] == [
        "vn:0100109106:1:C22TAA:1", "cn:013002200211:81532753", "cn:23442000000014209621"]
    assert all(i["result"] == "accepted" and i["errors"] == [] for i in notice["items"])
    assert (await lookup(cli, **vn_key(1)))["status"] == "valid"
    assert (await lookup(cli, code="013002200211", number="81532753"))["status"] == "valid"
    assert (await lookup(cli, number="23442000000014209621"))["status"] == "valid"


async def test_repost_returns_same_notice_and_changes_nothing(cli: Client) -> None:
    body = package([vn_invoice(1), vn_invoice(2, seller_tax_id="0100109107")])
    first = await cli.post(URL, json=body)
    first_notice = await first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert first_notice["result"] == "partially_accepted"
    second = await cli.post(URL, data=json.dumps(body, indent=2, sort_keys=True),
                            headers={"Content-Type": "application/json"})
    assert second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == first_notice


async def test_same_package_id_with_other_content_conflicts(cli: Client) -> None:
    await post(cli, package([vn_invoice(1)], package_id="PKG-A"))
    error = await post(cli, package([vn_invoice(2)], package_id="PKG-A"), status=409)
    assert error["error"]["code"] == "package.id_conflict"
    assert (await lookup(cli, **vn_key(2)))["status"] == "not_found"


async def test_count_mismatch_rejects_whole_package_and_stores_nothing(cli: Client) -> None:
    body = package([vn_invoice(1), vn_invoice(2)], declared=3, package_id="PKG-COUNT")
    error = await post(cli, body, status=422)
    assert error["error"]["code"] == "package.count_mismatch"
    assert error["error"]["details"] == {"declared_count": 3, "actual": 2}
    assert (await lookup(cli, **vn_key(1)))["status"] == "not_found"
    # Nothing was recorded under the id: the corrected package is accepted as new.
    fixed = await post(cli, package([vn_invoice(1), vn_invoice(2)], package_id="PKG-COUNT"))
    assert fixed["accepted"] == 2


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"{not json", 400, "package.malformed_json"),
    (b"\xff\xfe", 400, "package.malformed_json"),
    (b"[" * 50_000, 400, "package.malformed_json"),
    (b"[]", 422, "package.malformed"),
    (b'{"package_id": "", "sender": "x", "declared_count": 0}', 422, "package.id_invalid"),
    (b'{"package_id": "P 1", "sender": "x", "declared_count": 0}', 422, "package.id_invalid"),
    (b'{"package_id": "P1", "declared_count": 1}', 422, "package.sender_invalid"),
    (b'{"package_id": "P1", "sender": "x", "declared_count": "1"}', 422, "package.count_invalid"),
    (b'{"package_id": "P1", "sender": "x", "declared_count": 1, "invoices": {}}', 422,
     "package.malformed"),
    (b'{"package_id": "P1", "sender": "x", "declared_count": 0}', 422, "package.empty"),
])
async def test_malformed_bodies_get_clear_4xx(cli: Client, raw: bytes, status: int,
                                               code: str) -> None:
    resp = await cli.post(URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_wrong_media_type_is_415(cli: Client) -> None:
    resp = await cli.post(URL, data=b"<TDiep/>", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"


async def test_oversize_body_is_413_and_nothing_stored(aiohttp_client: Any, settings: Settings,
                                                       admin_token: str) -> None:
    small = settings.with_overrides(max_package_bytes=4096)
    cli = await aiohttp_client(create_app(small),
                               headers={"Authorization": f"Bearer {admin_token}"})
    body = package([vn_invoice(n) for n in range(1, 40)])
    resp = await cli.post(URL, json=body)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert (await lookup(cli, **vn_key(1)))["status"] == "not_found"


async def test_invalid_tax_id_and_series_are_rejected_per_invoice(cli: Client) -> None:
    body = package([
        vn_invoice(1, seller_tax_id="0100233480"),
        vn_invoice(2, series="C22ZAA"),
        vn_invoice(3, series="C23TAA"),
        vn_invoice(4),
    ])
    notice = await post(cli, body)
    rules = [[e["rule"] for e in item["errors"]] for item in notice["items"]]
    assert rules == [["vn.tax_id.invalid"], ["vn.series.invalid"], ["vn.series.year_mismatch"],
                     []]
    assert notice["items"][0]["errors"][0]["message_vi"]
    assert notice["result"] == "partially_accepted"
    assert (await lookup(cli, **vn_key(3, series="C23TAA")))["status"] == "not_found"
    assert (await lookup(cli, **vn_key(4)))["status"] == "valid"


async def test_lifecycle_through_packages(cli: Client) -> None:
    await post(cli, package([vn_invoice(n) for n in range(1, 6)]))
    notice = await post(cli, package(
        [vn_invoice(6, kind="replacement", original=vn_key(2)),
         vn_invoice(7, kind="adjustment", original=vn_key(3), amount_before_tax="-1000",
                    tax_amount="-100", total_amount="-1100")],
        [cancel(4)]))
    assert notice["result"] == "accepted"
    assert (await lookup(cli, **vn_key(2)))["status"] == "replaced"
    assert (await lookup(cli, **vn_key(3)))["status"] == "adjusted"
    assert (await lookup(cli, **vn_key(4)))["status"] == "cancelled"
    again = await post(cli, package([], [cancel(4, notice_id="04SS-2")]))
    assert again["items"][0]["errors"][0]["rule"] == "notice.target.not_in_force"
