from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from indexer.store import InvoiceStore
from indexer.store.sqlite import open_sqlite_store

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
