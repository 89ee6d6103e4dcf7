"""The seller's taxpayer status in lookup answers and `GET /taxpayers/{tax_id}` (issue 17,
docs/vn-rules.md §4): the status on the issue date and today, and a warning on a `valid`
invoice from a seller closed (01, 03), suspended (05) or not at its registered address (06)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, SELLER_2, cn_invoice, package, vn_invoice, vn_key

KEY = {k: str(v) for k, v in vn_key(1).items()}


def _registry(status: str, since: str | None = None) -> dict[str, Any]:
    record = {
        "tax_id": SELLER,
        "name": "Công ty Cổ phần Thử nghiệm",
        "status": status,
        "status_since": since,
    }
    return {"taxpayers": [record]}


async def _load(cli: Client, *imports: dict[str, Any]) -> None:
    # the invoice first, while the registry is empty (its checks off), then the statuses
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(), cn_invoice()]))
    assert (await resp.json())["result"] == "accepted"
    for body in imports:
        resp = await cli.post("/api/v1/admin/registry", json=body)
        assert resp.status == 200, await resp.text()


async def _lookup(cli: Client, headers: dict[str, str]) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params=KEY, headers=headers)
    assert resp.status == 200
    answer: dict[str, Any] = await resp.json()
    return answer


@pytest.mark.parametrize(
    ("imports", "issue_day", "today", "warnings"),
    [
        # operating since before the invoice, not at its registered address since 2024
        (
            [_registry("00", "2020-01-01"), _registry("06", "2024-01-01")],
            "00",
            "06",
            [{"code": "seller_not_at_registered_address", "when": "today", "status": "06"}],
        ),
        # suspended all along; closed (pending) since 2023
        (
            [_registry("05")],
            "05",
            "05",
            [
                {"code": "seller_suspended", "when": "on_issue_date", "status": "05"},
                {"code": "seller_suspended", "when": "today", "status": "05"},
            ],
        ),
        (
            [_registry("00", "2020-01-01"), _registry("03", "2023-01-01")],
            "00",
            "03",
            [{"code": "seller_closed", "when": "today", "status": "03"}],
        ),
        (
            [_registry("01", "2020-01-01")],
            "01",
            "01",
            [
                {"code": "seller_closed", "when": "on_issue_date", "status": "01"},
                {"code": "seller_closed", "when": "today", "status": "01"},
            ],
        ),
        # operating: the status, no warning
        ([_registry("00", "2020-01-01")], "00", "00", []),
    ],
)
async def test_status_and_warning_in_the_answer(
    cli: Client,
    make_key: KeyMaker,
    imports: list[dict[str, Any]],
    issue_day: str,
    today: str,
    warnings: list[dict[str, str]],
) -> None:
    await _load(cli, *imports)
    answer = await _lookup(cli, bearer(await make_key("verify")))
    assert answer["status"] == "valid"
    assert answer["invoice"]["seller_status"] == {
        "known": True,
        "on_issue_date": issue_day,
        "today": today,
    }
    assert answer.get("warnings", []) == warnings


async def test_no_warning_unless_valid_and_unknown_sellers(cli: Client) -> None:
    await _load(cli, _registry("06", "2020-01-01"))
    mismatch = await (
        await cli.get("/api/v1/invoices/lookup", params={**KEY, "total_amount": "1"})
    ).json()
    assert mismatch["status"] == "mismatch"
    assert mismatch["invoice"]["seller_status"]["today"] == "06"
    assert "warnings" not in mismatch
    cn = await (
        await cli.get(
            "/api/v1/invoices/lookup", params={"code": "013002200211", "number": "81532753"}
        )
    ).json()
    assert (
        "seller_status" not in cn["invoice"]
    )  # the Vietnamese registry does not hold Chinese sellers


async def test_seller_not_in_the_registry(cli: Client) -> None:
    await _load(cli, {"taxpayers": [{"tax_id": SELLER_2, "name": "x", "status": "00"}]})
    answer = await _lookup(cli, {})
    assert answer["invoice"]["seller_status"] == {
        "known": False,
        "on_issue_date": None,
        "today": None,
    }
    assert "warnings" not in answer


async def test_taxpayer_endpoint(cli: Client, make_key: KeyMaker) -> None:
    await _load(cli, _registry("00", "2020-01-01"), _registry("06", "2024-01-01"))
    verifier = bearer(await make_key("verify"))
    resp = await cli.get(
        f"/api/v1/taxpayers/{SELLER}", params={"on": "2022-05-15"}, headers=verifier
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "06"
    assert body["status_on"] == "00"
    assert body["on"] == "2022-05-15"
    assert body["statuses"] == [
        {"status": "00", "since": "2020-01-01"},
        {"status": "06", "since": "2024-01-01"},
    ]
    assert body["warnings"] == [
        {"code": "seller_not_at_registered_address", "when": "today", "status": "06"}
    ]
    missing = await cli.get(f"/api/v1/taxpayers/{SELLER_2}", headers=verifier)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "taxpayer_not_found"
    bad = await cli.get(f"/api/v1/taxpayers/{SELLER}", params={"on": "soon"}, headers=verifier)
    assert bad.status == 400
    intake = bearer(await make_key("intake", [SELLER]))
    assert (await cli.get(f"/api/v1/taxpayers/{SELLER}", headers=intake)).status == 403
    trail = await (await cli.get("/api/v1/admin/audit")).json()
    assert "taxpayer.read" in str(trail)
