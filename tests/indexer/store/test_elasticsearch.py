"""What only the Elasticsearch store promises: its layout, its version guard, how it reports
bulk failures, and that the request path fails fast when the cluster stalls or is gone.

Backend-neutral behaviour is in test_contract.py. Faults are real: a private osmem-server
process is stopped with SIGSTOP (a stalled cluster) or its port is closed (a dead one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest
from elasticsearch import AsyncElasticsearch

from indexer.codec import DOC_FIELDS
from indexer.model import Lifecycle, Relation, RelationKind
from indexer.store.elasticsearch import (
    PATIENT,
    REQUEST_PATH,
    ClientOptions,
    ElasticsearchStore,
    ElasticsearchUnavailable,
    StaleInvoiceError,
    open_elasticsearch_store,
)
from indexer.store.es_bulk import BulkWriteError
from indexer.store.es_mappings import INVOICE_PROPERTIES, first_index, state_version
from indexer.store.protocol import DuplicateInvoiceError
from tests.factories import authority_code
from tests.indexer.store.conftest import EsTarget, drop_layout, fresh_prefix
from tests.indexer.store.plain_json import plain_json_client
from tests.indexer.store.test_contract import NOW, pkg, vn

#: Bounds a call that must fail fast; hitting it fails the test (TimeoutError, not the
#: expected error) instead of hanging the suite. It is not a timing assertion.
HANG_GUARD_S = 15


@pytest.fixture
async def es(es_target: EsTarget) -> AsyncIterator[ElasticsearchStore]:
    async with open_elasticsearch_store(es_target.url, index_prefix=fresh_prefix(),
                                        client_factory=es_target.client_factory) as store:
        try:
            yield store
        finally:
            await drop_layout(store.patient, store.layout)


@pytest.fixture
def private_osmem() -> Iterator[tuple[str, int]]:
    """An osmem-server of this test's own, so stopping it disturbs nothing else."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        yield server.url, server.pid
    finally:
        os.kill(server.pid, signal.SIGCONT)  # in case the test stopped it
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()


def stop(pid: int) -> None:
    """SIGSTOP a child process and return once every thread of it has stopped (the kernel
    reports a completed group stop to the parent), so no request slips through."""
    os.kill(pid, signal.SIGSTOP)
    os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_mapping_covers_exactly_the_codec_document() -> None:
    assert set(INVOICE_PROPERTIES) == set(DOC_FIELDS)


async def test_layout_is_templates_and_write_aliases(es: ElasticsearchStore) -> None:
    for alias in es.layout.templates():
        templates = await es.patient.indices.get_index_template(name=alias)
        (template,) = templates["index_templates"]
        assert template["index_template"]["index_patterns"] == [f"{alias}-*"]
        assert template["index_template"]["template"]["mappings"]["dynamic"] == "strict"
        aliases = await es.patient.indices.get_alias(name=alias)
        assert aliases.body == {first_index(alias): {"aliases": {alias: {
            "is_write_index": True}}}}
    await es.commit_package(pkg(), [vn(1)], [])
    got = await es.patient.get(index=es.layout.invoices, id=vn(1).doc_id)
    assert got["_index"] == first_index(es.layout.invoices)
    code = await es.patient.get(index=es.layout.codes, id=authority_code(1))
    assert code["_source"]["doc_id"] == vn(1).doc_id


async def test_reopening_an_existing_layout_keeps_its_data(es_target: EsTarget,
                                                           es: ElasticsearchStore) -> None:
    await es.commit_package(pkg(), [vn(1)], [])
    async with open_elasticsearch_store(es_target.url, index_prefix=es.layout.prefix,
                                        client_factory=es_target.client_factory) as again:
        assert await again.get_invoice(vn(1).doc_id) == vn(1)


async def test_relations_are_searchable_by_target(es: ElasticsearchStore) -> None:
    original = vn(1)
    await es.commit_package(pkg("PKG-1"), [original], [])
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", reason="sai", at=NOW),))
    await es.commit_package(pkg("PKG-2"), [], [cancelled])
    await es.patient.indices.refresh(index=es.layout.invoices)
    hits = await es.patient.search(index=es.layout.invoices,
                                   query={"term": {"relations.notice_id": "04SS-1"}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == [original.doc_id]


async def test_changed_state_is_stored_with_its_version(es: ElasticsearchStore) -> None:
    original = vn(1)
    await es.commit_package(pkg("PKG-1"), [original], [])
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", at=NOW),))
    await es.commit_package(pkg("PKG-2"), [], [cancelled])
    got = await es.patient.get(index=es.layout.invoices, id=original.doc_id)
    assert got["_version"] == state_version(cancelled) == 2


async def test_an_older_state_never_overwrites_a_newer_one(es: ElasticsearchStore) -> None:
    """A cancelled invoice must never come back as issued, nor be replaced by a package that
    read it before the cancellation."""
    original = vn(1)
    await es.commit_package(pkg("PKG-1"), [original], [])
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", at=NOW),))
    await es.commit_package(pkg("PKG-2"), [], [cancelled])
    replaced_meanwhile = dataclasses.replace(original, lifecycle=Lifecycle.REPLACED, relations=(
        Relation(RelationKind.REPLACED_BY, key=vn(2).key, at=NOW),))
    for stale in (original, replaced_meanwhile):
        with pytest.raises(StaleInvoiceError):
            await es.commit_package(pkg("PKG-3"), [vn(2)], [stale])
    assert await es.get_invoice(original.doc_id) == cancelled
    assert await es.get_invoice(vn(2).doc_id) is None
    assert await es.get_package("PKG-3") is None


async def test_the_cluster_refuses_an_older_state_even_past_the_precheck(
        es: ElasticsearchStore) -> None:
    """The precheck narrows the window; the external version is what closes it. Drive the
    guarded write on its own, as a concurrent intake would reach it after our precheck."""
    original = vn(1)
    await es.commit_package(pkg("PKG-1"), [original], [])
    cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED, relations=(
        Relation(RelationKind.CANCELLED_BY, notice_id="04SS-1", at=NOW),))
    await es.commit_package(pkg("PKG-2"), [], [cancelled])
    replaced = dataclasses.replace(original, lifecycle=Lifecycle.REPLACED, relations=(
        Relation(RelationKind.REPLACED_BY, key=vn(2).key, at=NOW),))
    with pytest.raises(StaleInvoiceError):
        await es._write_changed([replaced])
    assert await es.get_invoice(original.doc_id) == cancelled


async def test_stale_error_is_a_duplicate_to_the_caller() -> None:
    assert issubclass(StaleInvoiceError, DuplicateInvoiceError)


async def test_item_failures_are_raised_with_their_ids_and_undone(
        es: ElasticsearchStore) -> None:
    unstorable = vn(2, key=dataclasses.replace(vn(2).key, number=2**70))
    with pytest.raises(BulkWriteError) as caught:
        await es.commit_package(pkg(), [vn(1), unstorable], [])
    assert caught.value.ids == [unstorable.doc_id]
    assert caught.value.failures[0].status == 400
    assert await es.get_invoice(vn(1).doc_id) is None
    assert await es.existing_authority_codes([authority_code(1)]) == set()
    assert await es.get_package("PKG-1") is None


async def test_ids_elasticsearch_cannot_hold_are_simply_absent(es: ElasticsearchStore) -> None:
    too_long = "x" * 513
    assert await es.get_invoice("") is None
    assert await es.get_invoice(too_long) is None
    assert await es.find_by_authority_code(too_long) is None
    assert await es.get_invoices([too_long, ""]) == {}
    assert await es.existing_authority_codes([too_long]) == set()


async def test_request_path_and_patient_clients_are_configured_apart(
        es_target: EsTarget) -> None:
    made: list[ClientOptions] = []

    def recording(url: str, options: ClientOptions) -> AsyncElasticsearch:
        made.append(options)
        return es_target.client_factory(url, options)

    prefix = fresh_prefix()
    async with open_elasticsearch_store(es_target.url, index_prefix=prefix,
                                        client_factory=recording) as store:
        await drop_layout(store.patient, store.layout)
    assert made == [REQUEST_PATH, PATIENT]
    assert REQUEST_PATH.request_timeout <= 1.0
    assert REQUEST_PATH.max_retries <= 1
    assert not REQUEST_PATH.retry_on_timeout
    assert PATIENT.request_timeout >= 30.0
    assert PATIENT.max_retries >= 1


async def test_a_stalled_cluster_fails_the_request_path_fast(
        private_osmem: tuple[str, int]) -> None:
    url, pid = private_osmem
    async with open_elasticsearch_store(url, client_factory=plain_json_client) as store:
        await store.commit_package(pkg(), [vn(1)], [])
        stop(pid)
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                with pytest.raises(ElasticsearchUnavailable):
                    await store.get_invoice(vn(1).doc_id)
                with pytest.raises(ElasticsearchUnavailable):
                    await store.ping()
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await store.get_invoice(vn(1).doc_id) == vn(1)


async def test_a_dead_cluster_is_reported_unavailable() -> None:
    """The store still opens (the service must start and answer from the replica), and
    says on every call that the cluster is unavailable."""
    async with asyncio.timeout(HANG_GUARD_S):
        async with open_elasticsearch_store(closed_port_url(),
                                            client_factory=plain_json_client) as store:
            assert not store.layout_ready
            with pytest.raises(ElasticsearchUnavailable):
                await store.ping()
            with pytest.raises(ElasticsearchUnavailable):
                await store.get_invoice(vn(1).doc_id)
            with pytest.raises(ElasticsearchUnavailable):
                await store.commit_package(pkg(), [vn(1)], [])


async def test_a_store_opened_while_the_cluster_stalls_heals_when_it_returns(
        private_osmem: tuple[str, int]) -> None:
    url, pid = private_osmem
    async with AsyncExitStack() as stack:
        stop(pid)
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                store = await stack.enter_async_context(open_elasticsearch_store(
                    url, client_factory=plain_json_client, startup_timeout=0.5))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert not store.layout_ready
        with pytest.raises(ElasticsearchUnavailable):  # no index yet: not "not found"
            await store.get_invoice(vn(1).doc_id)
        await store.ping()
        assert store.layout_ready
        await store.commit_package(pkg(), [vn(1)], [])
        assert await store.get_invoice(vn(1).doc_id) == vn(1)
