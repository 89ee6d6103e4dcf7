from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from indexer.store import InvoiceStore
from indexer.store.elasticsearch import open_elasticsearch_store
from indexer.store.es_mappings import IndexLayout, Layout
from indexer.store.es_originals import open_elasticsearch_originals
from indexer.store.es_registry import open_elasticsearch_registry
from indexer.store.originals import OriginalStore, open_sqlite_originals
from indexer.store.registry import RegistryStore, open_sqlite_registry
from indexer.store.sqlite import open_sqlite_store
from tests.conftest import EsTarget

# The store contract suite runs against every backend listed here; a new backend adds one
# parameter and one branch below.
STORE_BACKENDS = ["sqlite", "elasticsearch"]


def fresh_prefix() -> str:
    """Index names are lower-case; a prefix per test keeps tests from seeing each other."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def drop_layout(client: AsyncElasticsearch, layout: IndexLayout | Layout) -> None:
    """Delete the indices behind each alias and the templates, by name (Elasticsearch 8
    refuses wildcard deletes by default)."""
    for alias in layout.templates():
        if await client.indices.exists_alias(name=alias):
            for index in await client.indices.get_alias(name=alias):
                await client.indices.delete(index=index)
        if await client.indices.exists_index_template(name=alias):
            await client.indices.delete_index_template(name=alias)


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InvoiceStore]:
    if request.param == "sqlite":
        async with open_sqlite_store(tmp_path / "contract.sqlite3") as sqlite_store:
            yield sqlite_store
    elif request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        async with open_elasticsearch_store(target.url, index_prefix=fresh_prefix(),
                                            client_factory=target.client_factory) as es_store:
            try:
                yield es_store
            finally:
                await drop_layout(es_store.patient, es_store.layout)
    else:  # pragma: no cover - guards against a parameter added without its branch
        raise AssertionError(f"no fixture branch for backend {request.param}")


@pytest.fixture(params=STORE_BACKENDS)
async def registry(request: pytest.FixtureRequest,
                   tmp_path: Path) -> AsyncIterator[RegistryStore]:
    """The registry contract suite's store, on each backend (test_registry_contract.py)."""
    if request.param == "sqlite":
        async with open_sqlite_registry(tmp_path / "registry.sqlite3") as sqlite_registry:
            yield sqlite_registry
    elif request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        async with open_elasticsearch_registry(
                target.url, index_prefix=fresh_prefix(),
                client_factory=target.client_factory) as es_registry:
            try:
                yield es_registry
            finally:
                await drop_layout(es_registry.patient, es_registry.layout)
    else:  # pragma: no cover - guards against a parameter added without its branch
        raise AssertionError(f"no fixture branch for backend {request.param}")


@pytest.fixture(params=STORE_BACKENDS)
async def originals(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[OriginalStore]:
    """The originals contract suite's store, on each backend (test_originals_contract.py)."""
    if request.param == "sqlite":
        async with open_sqlite_originals(tmp_path / "originals.sqlite3") as sqlite_originals:
            yield sqlite_originals
    elif request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        async with open_elasticsearch_originals(
                target.url, index_prefix=fresh_prefix(),
                client_factory=target.client_factory) as es_originals:
            try:
                yield es_originals
            finally:
                await drop_layout(es_originals.patient, es_originals.layout)
    else:  # pragma: no cover - guards against a parameter added without its branch
        raise AssertionError(f"no fixture branch for backend {request.param}")
