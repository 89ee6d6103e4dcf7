from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from osmem_server import OsmemServer

from indexer.store.elasticsearch import ClientFactory, default_client
from tests.indexer.store.plain_json import plain_json_client
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

Client = TestClient[Any, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Callback receivers of these tests listen on 127.0.0.1; the refusal of private callback
    # addresses, on by default, has tests of its own (tests/verify/test_callback_urls.py).
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_CALLBACK_ALLOW_PRIVATE": "1"})


@pytest.fixture
async def admin_token(settings: Settings) -> str:
    """An admin key made the way `invoice-verify keys create` makes one."""
    async with open_access_db(settings.access_path) as conn:
        token, _ = await KeyStore(conn).create(Role.ADMIN, name="tests")
    return token


@pytest.fixture
async def cli(aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
              admin_token: str) -> Client:
    """The real app, called with an admin key (role-specific tests make their own keys)."""
    return await aiohttp_client(create_app(settings),
                                headers={"Authorization": f"Bearer {admin_token}"})


KeyMaker = Callable[..., Awaitable[str]]


@pytest.fixture
def make_key(cli: Client) -> KeyMaker:
    """Create a key through the admin API and return its token."""

    async def make(role: str, scopes: list[str] | None = None, name: str = "") -> str:
        resp = await cli.post("/api/v1/admin/keys",
                              json={"role": role, "scopes": scopes or [], "name": name})
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        token: str = body["token"]
        return token

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class EsTarget:
    url: str
    client_factory: ClientFactory


@pytest.fixture(scope="session")
def es_target() -> Iterator[EsTarget]:
    """The real Elasticsearch at INVOICE_ES_URL when set; otherwise an osmem-server process
    on a loopback port for the whole session (it also exits with the test process)."""
    url = os.environ.get("INVOICE_ES_URL")
    if url:
        yield EsTarget(url, default_client)
        return
    server = OsmemServer.start(japanese=False)
    try:
        yield EsTarget(server.url, plain_json_client)
    finally:
        server.close()
        if server.process.stdout is not None:  # the launcher leaves its pipe open
            server.process.stdout.close()
