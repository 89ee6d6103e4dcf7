"""Budgets on every path that answers about an invoice (issue 15 point 6), through the real
app on both rate-limiter backends: the in-process buckets and the Redis script."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image
from redis.asyncio import Redis

from tests.conftest import Client, bearer
from tests.factories import BUYER, authority_code, package, vn_invoice, vn_key
from tests.ledgers import csv_bytes
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"
BATCH = "/api/v1/verify/batch"
LEDGER = "/api/v1/reports/ledger"
REDIS = "redis://127.0.0.1:6379/0"
Build = Callable[[dict[str, str]], Awaitable[tuple[Client, dict[str, str]]]]


@pytest.fixture(params=["memory", "redis"])
async def budgeted(request: pytest.FixtureRequest, aiohttp_client: Any,
                   tmp_path: Path) -> AsyncIterator[Build]:
    """An app with the given limits and keys: admin, two unscoped verify keys, the buyer's
    verify key and the buyer's audit key; invoices 1-3 (made out to BUYER) indexed."""
    namespace = f"test:{uuid.uuid4().hex[:12]}"
    redis_env = ({"INVOICE_REDIS_URL": REDIS, "INVOICE_REDIS_NAMESPACE": namespace}
                 if request.param == "redis" else {})

    async def build(env: dict[str, str]) -> tuple[Client, dict[str, str]]:
        settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "d"), **redis_env,
                                      **env})
        async with open_access_db(settings.access_path) as conn:
            keys = KeyStore(conn)
            tokens = {"admin": (await keys.create(Role.ADMIN))[0],
                      "stranger": (await keys.create(Role.VERIFY))[0],
                      "stranger_2": (await keys.create(Role.VERIFY))[0],
                      "buyer": (await keys.create(Role.VERIFY, scopes=[BUYER]))[0],
                      "auditor": (await keys.create(Role.AUDIT, scopes=[BUYER]))[0]}
        cli: Client = await aiohttp_client(create_app(settings))
        resp = await cli.post("/api/v1/packages", headers=bearer(tokens["admin"]),
                              json=package([vn_invoice(n) for n in (1, 2, 3)]))
        assert (await resp.json())["accepted"] == 3
        return cli, tokens

    yield build
    if redis_env:
        client = Redis.from_url(REDIS)
        try:
            keys = [k async for k in client.scan_iter(match=f"{namespace}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def lookup(cli: Client, token: str, params: dict[str, Any]) -> tuple[int, str]:
    resp = await cli.get(LOOKUP, params=params, headers=bearer(token))
    body = await resp.json()
    return resp.status, body["error"]["code"] if "error" in body else body["status"]


async def batch(cli: Client, token: str, rows: list[dict[str, Any]]) -> list[str]:
    resp = await cli.post(BATCH, json=rows, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    results = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    return [r["error"]["code"] if "error" in r else r["status"] for r in results]


async def test_every_key_form_spends_the_one_bucket_of_the_invoice(budgeted: Build) -> None:
    """The authority code had a bucket of its own: twice the daily cap."""
    cli, keys = await budgeted({"INVOICE_RATE_INVOICE_PER_DAY": "2"})
    by_code = {"authority_code": authority_code(1)}
    assert await lookup(cli, keys["stranger"], vn_key(1)) == (200, "valid")
    assert await lookup(cli, keys["stranger_2"], by_code) == (200, "valid")
    assert await lookup(cli, keys["stranger"], by_code) == (429, "invoice_rate_limited")
    assert await lookup(cli, keys["stranger_2"], vn_key(1)) == (429, "invoice_rate_limited")
    assert await lookup(cli, keys["stranger"], vn_key(2)) == (200, "valid")


async def test_one_key_cannot_lock_the_buyer_out(budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_INVOICE_PER_DAY": "4",
                                "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY": "2"})
    stranger = [await lookup(cli, keys["stranger"], vn_key(1)) for _ in range(3)]
    assert stranger == [(200, "valid"), (200, "valid"), (429, "invoice_rate_limited")]
    assert [await lookup(cli, keys["stranger_2"], vn_key(1)) for _ in range(3)] == stranger
    # The invoice's day is spent by strangers; its buyer still verifies it (its own share).
    assert await lookup(cli, keys["buyer"], vn_key(1)) == (200, "valid")
    assert await lookup(cli, keys["buyer"], {"authority_code": authority_code(1)}) == (
        200, "valid")
    assert await lookup(cli, keys["buyer"], vn_key(1)) == (429, "invoice_rate_limited")


async def test_a_batch_spends_the_key_budget_per_row(budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_VERIFY_BURST": "3",
                                "INVOICE_RATE_VERIFY_PER_MINUTE": "1"})
    rows = [vn_key(n) for n in (1, 2, 3, 1, 2)]
    assert await batch(cli, keys["stranger"], rows) == ["valid"] * 3 + ["key_rate_limited"] * 2
    assert await lookup(cli, keys["stranger"], vn_key(1)) == (429, "key_rate_limited")


async def test_a_key_out_of_budget_is_refused_before_its_batch_is_read(budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_VERIFY_BURST": "2",
                                "INVOICE_RATE_VERIFY_PER_MINUTE": "1"})
    assert await batch(cli, keys["stranger"], [vn_key(1), vn_key(2)]) == ["valid"] * 2
    resp = await cli.post(BATCH, json=[vn_key(3)] * 1000, headers=bearer(keys["stranger"]))
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "key_rate_limited"


async def test_a_batch_beyond_the_burst_is_paced_not_refused(budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_VERIFY_BURST": "2",
                                "INVOICE_RATE_VERIFY_PER_MINUTE": "1200"})
    assert await batch(cli, keys["stranger"], [vn_key(n) for n in (1, 2, 3, 1, 2, 3)]) == [
        "valid"] * 6


async def audit_of(cli: Client, admin: str, key: str) -> list[tuple[str, str]]:
    resp = await cli.get("/api/v1/admin/audit", headers=bearer(admin),
                         params={"key_id": key.split("_")[1], "action": "verify"})
    return sorted((e["target"], e["outcome"]) for e in (await resp.json())["entries"])


LEDGER_HEADER = ["seller_tax_id", "template", "series", "number", "issued_on"]


def ledger(numbers: list[int]) -> bytes:
    return csv_bytes(LEDGER_HEADER, [[k["seller_tax_id"], "1", "C22TAA", k["number"],
                                      "2022-05-15"] for k in map(vn_key, numbers)])


async def post_ledger(cli: Client, token: str, body: bytes) -> list[tuple[int, str]]:
    resp = await cli.post(LEDGER, data=body, headers={**bearer(token),
                                                      "Content-Type": "text/csv"},
                          params={"buyer_tax_id": BUYER, "year": "2022"})
    assert resp.status == 200, await resp.text()
    return [(ln["row"], ln["error"]["code"] if "error" in ln else ln["status"])
            for ln in (await resp.json())["lines"]]


async def test_ledger_lines_spend_the_misses_and_are_audited(budgeted: Build) -> None:
    """A ledger of unknown invoices enumerated freely (97,480 not_found in 8 s)."""
    cli, keys = await budgeted({"INVOICE_RATE_MISSES_PER_HOUR": "3"})
    lines = await post_ledger(cli, keys["auditor"], ledger([1, 100, 101, 102, 103, 104, 2]))
    assert [status for _, status in lines] == [
        "valid", "not_found", "not_found", "not_found", "miss_rate_limited",
        "miss_rate_limited", "valid"]  # found lines are answered; misses beyond the budget not
    assert await lookup(cli, keys["auditor"], vn_key(200)) == (429, "miss_rate_limited")
    audited = await audit_of(cli, keys["admin"], keys["auditor"])
    assert [t for t in audited if t[1] != "miss_rate_limited"] == sorted(
        [(f"vn:0100109106:1:C22TAA:{n}", "not_found") for n in (100, 101, 102)]
        + [(f"vn:0100109106:1:C22TAA:{n}", "valid") for n in (1, 2)])
    assert len(audited) == 7


async def test_lookups_not_waiting_for_their_miss_still_count_every_one(
        budgeted: Build) -> None:
    """A lookup's miss is spent without the lookup waiting for it (`Access.spend_miss`): the
    next lookup's turn, sent after it, still sees it, so the misses are exact one request
    after another; a repeated miss is not counted again; a refused caller is told how long
    to wait and another key is not touched."""
    cli, keys = await budgeted({"INVOICE_RATE_MISSES_PER_HOUR": "3"})
    answers = [await lookup(cli, keys["stranger"], vn_key(n)) for n in (100, 101, 100, 102)]
    assert answers == [(200, "not_found")] * 4
    resp = await cli.get(LOOKUP, params=vn_key(103), headers=bearer(keys["stranger"]))
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "miss_rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert await lookup(cli, keys["stranger"], vn_key(1)) == (429, "miss_rate_limited")
    assert await lookup(cli, keys["stranger_2"], vn_key(103)) == (200, "not_found")


async def test_a_lookup_runs_its_turn_without_a_task_of_its_own(budgeted: Build) -> None:
    """On Redis limits the budget turn is queued on the round trips' lane while the read
    runs (`Access.queue_admit`), not run in a task beside it (~10 us of a replica lookup);
    the verdicts are the same (a hit, a miss, a refusal)."""
    cli, keys = await budgeted({"INVOICE_RATE_MISSES_PER_HOUR": "1"})
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        answers = [await lookup(cli, keys["stranger"], vn_key(n)) for n in (1, 100, 101)]
    finally:
        loop.set_task_factory(None)
    assert answers == [(200, "valid"), (200, "not_found"), (429, "miss_rate_limited")]
    assert made  # the factory saw the requests' own tasks
    assert not [name for name in made if "admit" in name]


async def test_ledger_lines_spend_the_invoice_budget(budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_INVOICE_PER_DAY": "2",
                                "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY": "1"})
    assert await lookup(cli, keys["auditor"], vn_key(1)) == (200, "valid")
    lines = await post_ledger(cli, keys["auditor"], ledger([1, 2]))
    assert lines == [(2, "invoice_rate_limited"), (3, "valid")]


async def test_a_qr_photo_spends_the_key_budget_per_code(budgeted: Build) -> None:
    """Three codes in one photo are three lookups (one token per photo before)."""
    cli, keys = await budgeted({"INVOICE_RATE_VERIFY_BURST": "2",
                                "INVOICE_RATE_VERIFY_PER_MINUTE": "1"})
    tiles = [Image.open(io.BytesIO(await (await cli.get(
        f"/api/v1/invoices/vn:0100109106:1:C22TAA:{n}/qr.png",
        headers=bearer(keys["admin"]))).read())).convert("L") for n in (1, 2, 3)]
    photo = Image.new("L", (sum(t.width for t in tiles) + 200, tiles[0].height + 100), 255)
    for n, tile in enumerate(tiles):
        photo.paste(tile, (50 + n * (tile.width + 50), 50))
    out = io.BytesIO()
    photo.save(out, format="PNG")
    resp = await cli.post("/api/v1/verify/qr", data=out.getvalue(),
                          headers={**bearer(keys["stranger"]), "Content-Type": "image/png"})
    codes = (await resp.json())["codes"]
    assert len(codes) == 3
    outcomes = sorted(c["error"]["code"] if c["error"] else c["result"]["status"]
                      for c in codes)
    assert outcomes == ["key_rate_limited", "valid", "valid"]


async def test_the_buyer_gets_qr_and_original_when_strangers_spent_the_day(
        budgeted: Build) -> None:
    cli, keys = await budgeted({"INVOICE_RATE_INVOICE_PER_DAY": "2",
                                "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY": "1"})
    for stranger in ("stranger", "stranger_2"):
        assert await lookup(cli, keys[stranger], vn_key(1)) == (200, "valid")
    qr = "/api/v1/invoices/vn:0100109106:1:C22TAA:1/qr.png"
    original = "/api/v1/invoices/vn:0100109106:1:C22TAA:1/original.xml"
    assert (await cli.get(qr, headers=bearer(keys["buyer"]))).status == 200
    resp = await cli.get(original, headers=bearer(keys["auditor"]))
    assert (await resp.json())["error"]["code"] == "original_not_kept"  # sent as JSON
    resp = await cli.get(qr, headers=bearer(keys["stranger"]))
    assert (resp.status, (await resp.json())["error"]["code"]) == (429, "invoice_rate_limited")
