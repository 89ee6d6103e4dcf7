"""X-Forwarded-For is believed from trusted proxies only (INVOICE_TRUSTED_PROXIES): real
requests to the real app over loopback, whose peer (127.0.0.1) is trusted or not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, bearer
from tests.factories import vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings, SettingsError

ClientMaker = Callable[..., Awaitable[Client]]
CLIENT, SPOOFED = "203.0.113.7", "198.51.100.1"


async def _service(aiohttp_client: ClientMaker, tmp_path: Path,
                   trusted: str | None) -> tuple[Client, str]:
    env = {"INVOICE_DATA_DIR": str(tmp_path / "data"),
           "INVOICE_RATE_AUTH_FAILURES_PER_MINUTE": "2"}
    if trusted is not None:
        env["INVOICE_TRUSTED_PROXIES"] = trusted
    settings = Settings.from_env(env)
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
    return await aiohttp_client(create_app(settings)), token


async def _clients(cli: Client, token: str) -> list[str]:
    resp = await cli.get("/api/v1/admin/audit", params={"action": "verify"},
                         headers=bearer(token))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return [entry["client"] for entry in body["entries"]]


async def _lookup(cli: Client, token: str, forwarded: str | None) -> None:
    headers = bearer(token) | ({"X-Forwarded-For": forwarded} if forwarded else {})
    resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(1), headers=headers)
    assert resp.status == 200, await resp.text()


async def test_a_trusted_proxy_names_the_client(aiohttp_client: ClientMaker,
                                                tmp_path: Path) -> None:
    cli, token = await _service(aiohttp_client, tmp_path, "127.0.0.1, 10.0.0.0/8")
    await _lookup(cli, token, CLIENT)
    # The client sent its own header; the balancer appended the address it saw, then a
    # second trusted proxy (10.1.2.3) its own: the first untrusted from the right counts.
    await _lookup(cli, token, f"{SPOOFED}, {CLIENT}, 10.1.2.3")
    await _lookup(cli, token, None)  # no header: the peer itself
    await _lookup(cli, token, f"{CLIENT}, not-an-address")  # believe nothing past garbage
    assert await _clients(cli, token) == ["127.0.0.1", "127.0.0.1", CLIENT, CLIENT]


async def test_an_untrusted_peer_is_the_client_whatever_it_sends(
        aiohttp_client: ClientMaker, tmp_path: Path) -> None:
    cli, token = await _service(aiohttp_client, tmp_path, "10.0.0.0/8")
    await _lookup(cli, token, CLIENT)
    cli_default, token_default = await _service(aiohttp_client, tmp_path / "default", None)
    await _lookup(cli_default, token_default, CLIENT)
    assert await _clients(cli, token) == ["127.0.0.1"]
    assert await _clients(cli_default, token_default) == ["127.0.0.1"]


async def test_failed_authentication_is_limited_per_forwarded_client(
        aiohttp_client: ClientMaker, tmp_path: Path) -> None:
    cli, _token = await _service(aiohttp_client, tmp_path, "127.0.0.1")

    async def attempt(client: str) -> int:
        resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(1),
                             headers={"Authorization": "Bearer ivk_wrong",
                                      "X-Forwarded-For": client})
        return resp.status

    assert [await attempt(SPOOFED) for _ in range(3)] == [401, 401, 429]
    assert await attempt(CLIENT) == 401  # another client behind the same balancer


def test_a_bad_trusted_proxy_setting_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="INVOICE_TRUSTED_PROXIES"):
        Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path),
                           "INVOICE_TRUSTED_PROXIES": "10.0.0.0/8, balancer"})
