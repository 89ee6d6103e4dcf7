"""Found by the Elasticsearch chaos test under full-suite load; fixed, and pinned here.

With Elasticsearch as the backend the taxpayer registry lives in the same cluster as the
primary. While the primary is unusable, intake queues a package with a provisional notice
(`Intake.provisional`, indexer/intake.py): it asks the registry once, within 1 s, whether it
can answer (`is_empty`), and defers the registry checks if not. But the checks themselves
(`_registry_checks`: `is_empty` again, `get_provider`, `get_taxpayers`) ran unguarded, so a
cluster that stopped answering between that probe and the checks raised
`ElasticsearchUnavailable` out of `JournaledIntake.submit`: the caller got a 500
`internal_error` for a package the journal could have taken (a 202 with the registry
checks deferred), and never the documented 503 with Retry-After either. Now every registry
read of a queued package shares the 1 s bound, and a failure defers the checks.

Reproduced deterministically in-process with the real fault: the real app on a private
osmem-server, whose process is frozen (SIGSTOP) right after the registry's first answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from osmem_server import OsmemServer

from fallback.outages import System
from indexer.registry import Provider, RegistryImport, Taxpayer
from indexer.store.registry import RegistryStore
from tests.chaos.procs import freeze, thaw
from tests.conftest import Client
from tests.factories import package, vn_invoice
from tests.indexer.store.plain_json import plain_json_client
from verify.app import create_app
from verify.keys import INTAKE, OUTAGES
from verify.settings import Settings


class FreezeAfterFirstAnswer:
    """The real registry; the cluster's process is frozen as soon as it answered once."""

    def __init__(self, inner: RegistryStore, pid: int) -> None:
        self.inner = inner
        self.pid = pid
        self.frozen = False

    async def import_registry(self, registry: RegistryImport) -> None:
        await self.inner.import_registry(registry)

    async def is_empty(self) -> bool:
        answer = await self.inner.is_empty()
        if not self.frozen:
            freeze(self.pid)
            self.frozen = True
        return answer

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]:
        return await self.inner.get_taxpayers(tax_ids)

    async def get_provider(self, provider_id: str) -> Provider | None:
        return await self.inner.get_provider(provider_id)

    async def counts(self) -> dict[str, int]:
        return await self.inner.counts()


@pytest.fixture
def settings(tmp_path: Path, osmem: OsmemServer) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_ES_URL": osmem.url, "INVOICE_INSECURE_LOCAL": "1",
                              "INVOICE_PROBE_INTERVAL_SECONDS": "3600",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})


async def test_a_cluster_lost_during_the_registry_checks_still_queues_the_package(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
        osmem: OsmemServer) -> None:
    app = create_app(settings, es_client_factory=plain_json_client)
    cli = await aiohttp_client(app)
    now = datetime.now(UTC)
    await app[OUTAGES].declare(System.PRIMARY, now - timedelta(minutes=1),
                               now + timedelta(hours=1), "tests", "tests")
    intake = app[INTAKE]
    assert intake.registry is not None
    intake.registry = FreezeAfterFirstAnswer(intake.registry, osmem.pid)
    try:
        resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
        body = await resp.json()
    finally:
        thaw(osmem.pid)
    assert resp.status in (202, 503), body
