"""Two service processes sharing one Elasticsearch (osmem-server in CI, or INVOICE_ES_URL)
share its registry and its kept originals: what is imported or kept through one is what the
other checks against and serves. Each app has its own data directory, as two hosts would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from indexer.store.elasticsearch import PATIENT
from indexer.store.es_mappings import IndexLayout
from indexer.store.es_originals import OriginalsLayout
from indexer.store.es_registry import RegistryLayout
from tests.conftest import Client, EsTarget, bearer
from tests.factories import PROVIDER, SELLER, package, vn_invoice
from tests.indexer.store.conftest import drop_layout, fresh_prefix
from tests.verify.test_registry_rules import registry
from tests.xml_factories import xml_package
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

UNREGISTERED = "0102671977"
Process = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def prefix(es_target: EsTarget) -> AsyncIterator[str]:
    name = fresh_prefix()
    yield name
    client = es_target.client_factory(es_target.url, PATIENT)
    try:
        for layout in (IndexLayout(name), RegistryLayout(name), OriginalsLayout(name)):
            await drop_layout(client, layout)
    finally:
        await client.close()


@pytest.fixture
def process(aiohttp_client: Any, tmp_path: Path, es_target: EsTarget, prefix: str) -> Process:
    """Start one more service process on the shared cluster, with its own data directory."""
    async def start(name: str) -> Client:
        settings = Settings.from_env({
            "INVOICE_DATA_DIR": str(tmp_path / name), "INVOICE_ES_URL": es_target.url,
            "INVOICE_ES_INDEX_PREFIX": prefix})
        async with open_access_db(settings.access_path) as conn:
            token, _ = await KeyStore(conn).create(Role.ADMIN)
        app = create_app(settings, es_client_factory=es_target.client_factory)
        client: Client = await aiohttp_client(app, headers=bearer(token))
        return client
    return start


async def rules_of(cli: Client, *invoices: dict[str, Any], sender: str = PROVIDER,
                   package_id: str) -> list[list[str]]:
    body = package(list(invoices), package_id=package_id)
    body["sender"] = sender
    notice = await (await cli.post("/api/v1/packages", json=body)).json()
    return [[e["rule"] for e in item["errors"]] for item in notice["items"]]


async def test_a_registry_imported_through_one_process_is_checked_by_another(
        process: Process) -> None:
    one, two = await process("one"), await process("two")
    assert await rules_of(two, vn_invoice(1), sender="anyone", package_id="PKG-A") == [[]], \
        "both start with the same empty registry: no checks"
    resp = await one.post("/api/v1/admin/registry", json=registry())
    assert resp.status == 200, await resp.text()
    assert await rules_of(two, vn_invoice(2), sender="anyone", package_id="PKG-B") == [
        ["registry.provider.unknown"]]
    assert await rules_of(two, vn_invoice(3, seller_tax_id=UNREGISTERED),
                          package_id="PKG-C") == [["registry.seller.unknown"]]
    assert await rules_of(two, vn_invoice(4), package_id="PKG-D") == [[]]
    totals = await (await two.post("/api/v1/admin/registry", json={"taxpayers": []})).json()
    assert totals["totals"] == {"taxpayers": 1, "providers": 1}


async def test_an_original_kept_by_one_process_is_served_by_another(process: Process) -> None:
    one, two = await process("one"), await process("two")
    resp = await one.post("/api/v1/packages", data=xml_package([vn_invoice(1)]),
                          headers={"Content-Type": "application/xml"})
    assert (await resp.json())["result"] == "accepted"
    url = "/api/v1/invoices/vn:0100109106:1:C22TAA:1/original.xml"
    kept = await one.get(url)
    served = await two.get(url)
    assert (kept.status, served.status) == (200, 200)
    assert served.content_type == "application/xml"
    body = await served.read()
    assert body == await kept.read()
    assert b"<KHHDon>C22TAA</KHHDon>" in body
    assert SELLER.encode() in body
