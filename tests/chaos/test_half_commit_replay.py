"""Found by the Elasticsearch chaos test; fixed, and pinned here.

On Elasticsearch a commit is not atomic (indexer/store/elasticsearch.py, "What is not
atomic" (b)): a commit cancelled between its bulk of creates and its package record (the
intake write timeout, `asyncio.timeout` in fallback/journaled_intake.py, firing while the
bulk is in flight: nothing is known written, so nothing is undone) leaves the package's
invoices in the primary without the package record. The package was acknowledged (202,
queued in the journal), so the reconciler applies it again; `Intake` then found the
invoices and rejected every one of them as `chain.duplicate_key` of itself: the invoices
indexed, but the final notice `rejected`. Now a replay takes documents that already carry
its package id as its own (`_Checked.forget_own_leftovers`, and the store's create bulk
accepts conflicts with them), and the drain no longer cancels commits with a timeout of
its own.

Reproduced deterministically in-process (the real app on a private osmem-server): the state
the cancelled commit leaves is made with the store's own first commit step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from osmem_server import OsmemServer

from fallback.outages import System
from indexer.codec import invoice_from_doc
from indexer.store.elasticsearch import ElasticsearchStore
from indexer.store.es_bulk import BulkOutcome
from indexer.store.protocol import StoredPackage
from tests.chaos.load import doc_id
from tests.chaos.polling import poll
from tests.conftest import Client
from tests.factories import authority_code, package, vn_invoice
from tests.indexer.store.plain_json import plain_json_client
from verify.app import create_app
from verify.keys import JOURNALED_INTAKE, OUTAGES, RECONCILER, STORE
from verify.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, osmem: OsmemServer) -> Settings:
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_ES_URL": osmem.url, "INVOICE_INSECURE_LOCAL": "1",
                              "INVOICE_PROBE_INTERVAL_SECONDS": "3600",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})


async def test_a_replay_after_a_half_done_commit_takes_its_own_invoices(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings) -> None:
    app = create_app(settings, es_client_factory=plain_json_client)
    cli = await aiohttp_client(app)
    now = datetime.now(UTC)
    await app[OUTAGES].declare(System.PRIMARY, now - timedelta(minutes=1),
                               now + timedelta(seconds=0.3), "tests", "tests")
    body = package([vn_invoice(1), vn_invoice(2)], package_id="PKG-HALF-1")
    resp = await cli.post("/api/v1/packages", json=body)
    assert resp.status == 202
    await poll(lambda: app[OUTAGES].active(System.PRIMARY) is None, 5, "the window's end")

    # what a commit cancelled mid-bulk leaves: the invoices created, no package record
    store = app[STORE]
    assert isinstance(store, ElasticsearchStore)
    journal = app[JOURNALED_INTAKE].journal
    pending = [journal.pending_doc(doc_id(n)) for n in (1, 2)]
    invoices = [invoice_from_doc(p.doc) for p in pending if p is not None]
    assert len(invoices) == 2
    record = StoredPackage("PKG-HALF-1", body["sender"], "-", now, {})
    await store._create_new(record, invoices, BulkOutcome())
    assert await store.get_package("PKG-HALF-1") is None

    await app[RECONCILER].run()
    assert journal.pending_count == 0
    resp = await cli.post("/api/v1/packages", json=body)
    notice: dict[str, Any] = await resp.json()
    rules = [e["rule"] for item in notice["items"] for e in item["errors"]]
    assert (resp.status, notice["result"], rules) == (200, "accepted", []), notice


async def test_a_replay_takes_authority_codes_left_without_their_invoices(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings) -> None:
    """The bulk of creates writes the authority codes first: a commit cut off inside it can
    leave codes whose invoices never landed. The replay takes them as its own too."""
    app = create_app(settings, es_client_factory=plain_json_client)
    cli = await aiohttp_client(app)
    body = package([vn_invoice(11), vn_invoice(12)], package_id="PKG-HALF-2")
    store = app[STORE]
    assert isinstance(store, ElasticsearchStore)
    await store.ensure_layout()
    for number in (11, 12):
        await store.patient.create(index=store.layout.codes, id=authority_code(number),
                                   document={"authority_code": authority_code(number),
                                             "doc_id": doc_id(number),
                                             "package_id": "PKG-HALF-2"})
    resp = await cli.post("/api/v1/packages", json=body)
    notice: dict[str, Any] = await resp.json()
    rules = [e["rule"] for item in notice["items"] for e in item["errors"]]
    assert (resp.status, notice["result"], rules) == (200, "accepted", []), notice
    other = package([vn_invoice(13, authority_code=authority_code(11))],
                    package_id="PKG-HALF-3")
    resp = await cli.post("/api/v1/packages", json=other)
    refused: dict[str, Any] = await resp.json()
    assert [e["rule"] for e in refused["items"][0]["errors"]] == [
        "chain.duplicate_authority_code"]  # another package's use of the code still is one
