from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from indexer.store import InvoiceStore
from indexer.store.sqlite import open_sqlite_store
from verify.app import create_app
from verify.settings import Settings

Client = TestClient[Any, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
async def cli(aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings) -> Client:
    return await aiohttp_client(create_app(settings))


# The store contract suite runs against every backend listed here; a new backend adds one
# parameter and one branch below.
STORE_BACKENDS = ["sqlite"]


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InvoiceStore]:
    if request.param == "sqlite":
        async with open_sqlite_store(tmp_path / "contract.sqlite3") as sqlite_store:
            yield sqlite_store
    else:  # pragma: no cover - guards against a parameter added without its branch
        raise AssertionError(f"no fixture branch for backend {request.param}")
