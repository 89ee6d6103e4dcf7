"""The default budgets stop abuse, not customers (issue 15 point 8; docs/access.md): a
provider draining a backlog, a business's month in one batch, and an enumeration from one
key, each with the defaults of a fresh install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.conftest import Client, bearer
from tests.factories import PROVIDER, package, vn_invoice, vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings


async def fresh(aiohttp_client: Any, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "d")})
    async with open_access_db(settings.access_path) as conn:
        keys = KeyStore(conn)
        tokens = {"intake": (await keys.create(Role.INTAKE, scopes=[PROVIDER]))[0],
                  "verify": (await keys.create(Role.VERIFY))[0]}
    return await aiohttp_client(create_app(settings)), tokens


async def batch(cli: Client, token: str, rows: list[dict[str, Any]]) -> list[str]:
    resp = await cli.post("/api/v1/verify/batch", json=rows, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    return [r["error"]["code"] if "error" in r else r["status"]
            for r in map(orjson.loads, (await resp.read()).splitlines())]


async def test_a_provider_posts_400_packages_back_to_back(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    """166 of them were refused 429 with the old single key budget (burst 200)."""
    cli, keys = await fresh(aiohttp_client, tmp_path)
    statuses = [(await cli.post("/api/v1/packages", json=package([vn_invoice(n)]),
                                headers=bearer(keys["intake"]))).status
                for n in range(1, 401)]
    assert statuses == [200] * 400


async def test_a_batch_of_800_with_200_unknown_is_answered_in_full(aiohttp_client: Any,
                                                                  tmp_path: Path) -> None:
    cli, keys = await fresh(aiohttp_client, tmp_path)
    for start in range(1, 601, 300):
        resp = await cli.post("/api/v1/packages", headers=bearer(keys["intake"]), json=package(
            [vn_invoice(n) for n in range(start, start + 300)]))
        assert (await resp.json())["accepted"] == 300
    answers = await batch(cli, keys["verify"], [vn_key(n) for n in range(1, 801)])
    assert answers == ["valid"] * 600 + ["not_found"] * 200


async def test_an_enumeration_from_one_key_is_still_stopped(aiohttp_client: Any,
                                                            tmp_path: Path) -> None:
    cli, keys = await fresh(aiohttp_client, tmp_path)
    answers = await batch(cli, keys["verify"], [vn_key(n) for n in range(1000, 2000)])
    assert answers == ["not_found"] * 600 + ["miss_rate_limited"] * 400
    resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(5000),
                         headers=bearer(keys["verify"]))
    assert resp.status == 429
    # The batch's 1,000 rows spent the key's own tokens too: which budget answers first
    # depends on how much the key bucket refilled meanwhile, and either stops the key.
    assert (await resp.json())["error"]["code"] in {"miss_rate_limited", "key_rate_limited"}


async def test_the_same_batch_run_again_and_again_is_no_enumeration(aiohttp_client: Any,
                                                                    tmp_path: Path) -> None:
    """The 4th run of a batch with 200 unknown invoices within an hour got 200
    miss_rate_limited rows: each run counted its misses again. A miss is counted once per
    key and invoice an hour."""
    cli, keys = await fresh(aiohttp_client, tmp_path)
    resp = await cli.post("/api/v1/packages", headers=bearer(keys["intake"]), json=package(
        [vn_invoice(n) for n in range(1, 51)]))
    assert (await resp.json())["accepted"] == 50
    rows = [vn_key(n) for n in range(1, 251)]
    for _ in range(4):
        assert await batch(cli, keys["verify"], rows) == ["valid"] * 50 + ["not_found"] * 200
