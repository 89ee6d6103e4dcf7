from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Client

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
