"""Rate limits through the real app: per key, per invoice, misses (enumeration), brute force."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Client, bearer
from tests.factories import package, vn_invoice, vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"
AppFactory = Callable[[dict[str, str]], Awaitable[tuple[Client, dict[str, str]]]]


@pytest.fixture
def limited(aiohttp_client: Any, tmp_path: Any) -> AppFactory:
    """An app with the given rate-limit environment, plus an admin and a verify key."""

    async def build(env: dict[str, str]) -> tuple[Client, dict[str, str]]:
        settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "d"), **env})
        async with open_access_db(settings.access_path) as conn:
            keys = KeyStore(conn)
            admin, _ = await keys.create(Role.ADMIN)
            verifier, _ = await keys.create(Role.VERIFY)
        cli: Client = await aiohttp_client(create_app(settings))
        resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1), vn_invoice(2)]),
                              headers=bearer(admin))
        assert (await resp.json())["accepted"] == 2
        return cli, {"admin": admin, "verify": verifier}

    return build


def assert_429(resp: Any, body: dict[str, Any], code: str) -> None:
    assert resp.status == 429
    assert body["error"]["code"] == code
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["error"]["details"]["retry_after"] == int(resp.headers["Retry-After"])


async def test_key_burst_then_429(limited: AppFactory) -> None:
    cli, keys = await limited({"INVOICE_RATE_KEY_BURST": "3", "INVOICE_RATE_KEY_PER_MINUTE": "1"})
    statuses = []
    for _ in range(4):
        resp = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(keys["verify"]))
        statuses.append(resp.status)
    assert statuses == [200, 200, 200, 429]
    assert_429(resp, await resp.json(), "key_rate_limited")
    other = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(keys["admin"]))
    assert other.status == 200, "another key has its own bucket"


async def test_bad_lookups_spend_the_key_budget_too(limited: AppFactory) -> None:
    """A lookup's key budget is spent with its lookup budgets, or after a bad query."""
    cli, keys = await limited({"INVOICE_RATE_KEY_BURST": "2", "INVOICE_RATE_KEY_PER_MINUTE": "1"})
    statuses = []
    for params in ({"number": "1"}, {**vn_key(1), "total_amount": "x"}, vn_key(1)):
        resp = await cli.get(LOOKUP, params=params, headers=bearer(keys["verify"]))
        statuses.append(resp.status)
    assert statuses == [400, 400, 429]
    assert_429(resp, await resp.json(), "key_rate_limited")
    bad = await cli.get(LOOKUP, params={"number": "1"}, headers=bearer(keys["verify"]))
    assert_429(bad, await bad.json(), "key_rate_limited")  # out of budget: 429, not 400


async def test_one_invoice_checked_too_often(limited: AppFactory) -> None:
    cli, keys = await limited({"INVOICE_RATE_INVOICE_PER_DAY": "2"})
    for token in (keys["verify"], keys["admin"]):
        assert (await cli.get(LOOKUP, params=vn_key(1), headers=bearer(token))).status == 200
    resp = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(keys["verify"]))
    assert_429(resp, await resp.json(), "invoice_rate_limited")
    assert (await cli.get(LOOKUP, params=vn_key(2), headers=bearer(keys["verify"]))).status == 200


async def test_enumeration_runs_out_of_misses(limited: AppFactory) -> None:
    cli, keys = await limited({"INVOICE_RATE_MISSES_PER_HOUR": "3"})
    for number in range(100, 103):
        resp = await cli.get(LOOKUP, params=vn_key(number), headers=bearer(keys["verify"]))
        assert (await resp.json())["status"] == "not_found"
    resp = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(keys["verify"]))
    assert_429(resp, await resp.json(), "miss_rate_limited")


async def test_brute_force_hits_the_failure_limit(limited: AppFactory) -> None:
    cli, keys = await limited({"INVOICE_RATE_AUTH_FAILURES_PER_MINUTE": "5"})
    statuses = []
    for n in range(7):
        guess = f"ivk_{n:012x}_{'A' * 43}"
        resp = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(guess))
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 2
    assert_429(resp, await resp.json(), "auth_rate_limited")
    valid = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(keys["verify"]))
    assert valid.status == 200, "a valid key is not punished for others' failures"


async def test_health_is_never_limited(limited: AppFactory) -> None:
    cli, _ = await limited({"INVOICE_RATE_AUTH_FAILURES_PER_MINUTE": "1"})
    for _ in range(5):
        assert (await cli.get("/healthz")).status == 200
