"""The real app on each primary backend (SQLite files, Elasticsearch: osmem-server or
INVOICE_ES_URL), for tests that must hold on both, and the app's stores opened beside it
(for what the CLI runs through `indexer` functions, such as `recheck`).

A module that imports `settings_on_each_backend` and `app_on_each_backend` has them as its
fixtures `settings` and `cli` (standing for the conftest's: each test runs once per
backend); or it builds its own from `serve`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from indexer.store import InvoiceStore
from indexer.store.elasticsearch import PATIENT, ClientFactory, open_elasticsearch_store
from indexer.store.es_mappings import IndexLayout
from indexer.store.es_originals import OriginalsLayout
from indexer.store.es_registry import RegistryLayout, open_elasticsearch_registry
from indexer.store.registry import RegistryStore, open_sqlite_registry
from indexer.store.sqlite import open_sqlite_store
from tests.conftest import Client, EsTarget, bearer
from tests.indexer.store.conftest import drop_layout, fresh_prefix
from verify.app import create_app
from verify.settings import Settings

BACKENDS = ["sqlite", "elasticsearch"]


def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The settings of `request.param`'s backend, in a data directory and an index prefix of
    the test's own."""
    env = {"INVOICE_DATA_DIR": str(tmp_path / "data")}
    if request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        env |= {"INVOICE_ES_URL": target.url, "INVOICE_ES_INDEX_PREFIX": fresh_prefix()}
    return Settings.from_env(env)


@pytest.fixture(name="settings", params=BACKENDS)
def settings_on_each_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The settings of each backend in turn."""
    return backend_settings(request, tmp_path)


@pytest.fixture(name="cli")
async def app_on_each_backend(
    request: pytest.FixtureRequest,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    admin_token: str,
) -> AsyncIterator[Client]:
    """The real app on `settings`' backend, called with an admin key."""
    async for client in serve(request, aiohttp_client, settings, admin_token):
        yield client


def _factory(request: pytest.FixtureRequest, settings: Settings) -> ClientFactory | None:
    if not settings.es_url:
        return None
    target: EsTarget = request.getfixturevalue("es_target")
    return target.client_factory


async def serve(
    request: pytest.FixtureRequest,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    token: str,
) -> AsyncIterator[Client]:
    """The app, called with `token`; on Elasticsearch its indices are dropped after."""
    factory = _factory(request, settings)
    yield await aiohttp_client(
        create_app(settings, es_client_factory=factory), headers=bearer(token)
    )
    if settings.es_url and factory is not None:
        client = factory(settings.es_url, PATIENT)
        try:
            prefix = settings.es_index_prefix
            for layout in (IndexLayout(prefix), RegistryLayout(prefix), OriginalsLayout(prefix)):
                await drop_layout(client, layout)
        finally:
            await client.close()


def open_primary(
    request: pytest.FixtureRequest, settings: Settings
) -> AbstractAsyncContextManager[InvoiceStore]:
    """The app's primary store, opened beside it."""
    if settings.es_url:
        return open_elasticsearch_store(
            settings.es_url,
            index_prefix=settings.es_index_prefix,
            client_factory=_factory(request, settings),
        )
    return open_sqlite_store(settings.sqlite_path)


def open_registry(
    request: pytest.FixtureRequest, settings: Settings
) -> AbstractAsyncContextManager[RegistryStore]:
    """The app's registry, opened beside it."""
    if settings.es_url:
        return open_elasticsearch_registry(
            settings.es_url,
            index_prefix=settings.es_index_prefix,
            client_factory=_factory(request, settings),
        )
    return open_sqlite_registry(settings.registry_path)
