"""The authority verifies invoices of the last 5 years (docs/cn-rules.md §4): a lookup that
finds nothing for an invoice issued before that window is answered `outside_window` with its
reason, not `not_found` (docs/lookups.md#older-than-the-verification-window)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fallback.lookup.window import window_start
from indexer.model import SCHEME_TZ
from tests.conftest import Client
from tests.factories import SELLER, cn_invoice, package, vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

TODAY = datetime.now(UTC).date()
OLD = window_start(TODAY, 6).isoformat()  # a day six years back: before the window
RECENT = window_start(TODAY, 1).isoformat()
VN_KEY = {k: str(v) for k, v in vn_key(7).items()}  # C22TAA: 2022 may be in or out


async def _lookup(cli: Client, **params: str) -> dict[str, Any]:
    resp = await cli.get("/api/v1/invoices/lookup", params=params)
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


@pytest.mark.parametrize(
    "params",
    [
        {**VN_KEY, "issued_on": OLD},
        {"number": "20442000000014209621"},  # a 数电 number of 2020 (its first two digits)
        {"number": "20442000000014209621", "issued_on": OLD},
        {"code": "013002200211", "number": "81532799", "issued_on": OLD},
    ],
)
async def test_a_miss_before_the_window_says_so(cli: Client, params: dict[str, str]) -> None:
    answer = await _lookup(cli, **params)
    assert answer["status"] == "outside_window"
    assert answer["reason"] == "older_than_verification_window"
    assert answer["window_years"] == 5
    # The window ends on the scheme's own day (Vietnam UTC+7, China UTC+8), not UTC's.
    today = datetime.now(SCHEME_TZ["vn" if "seller_tax_id" in params else "cn"]).date()
    assert answer["window_start"] == window_start(today, 5).isoformat()
    assert answer["invoice"] is None


@pytest.mark.parametrize(
    "params",
    [
        {**VN_KEY, "issued_on": RECENT},
        {"code": "013002200211", "number": "81532799"},  # no date known: an honest not_found
        {"number": f"{TODAY.year % 100:02d}442000000014209621"},  # this year's 数电 number
    ],
)
async def test_a_miss_inside_the_window_is_not_found(cli: Client, params: dict[str, str]) -> None:
    answer = await _lookup(cli, **params)
    assert answer["status"] == "not_found"
    assert "window_years" not in answer


async def test_a_found_old_invoice_is_answered_as_found(cli: Client) -> None:
    invoice = cn_invoice("81532700", issued_at=f"{OLD}T10:00:00+08:00")
    resp = await cli.post("/api/v1/packages", json=package([invoice]))
    assert (await resp.json())["result"] == "accepted"
    answer = await _lookup(cli, code="013002200211", number="81532700", issued_on=OLD)
    assert answer["status"] == "valid"


async def test_window_off(aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "w"), "INVOICE_VERIFICATION_WINDOW_YEARS": "0"}
    )
    async with open_access_db(settings.access_path) as conn:
        admin, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
    client = await aiohttp_client(
        create_app(settings), headers={"Authorization": f"Bearer {admin}"}
    )
    answer = await _lookup(client, **VN_KEY, issued_on=OLD)
    assert answer["status"] == "not_found"
    assert SELLER in answer["key"]["seller_tax_id"]


def test_window_start_on_29_february() -> None:
    assert window_start(date(2028, 2, 29), 5) == date(2023, 2, 28)
