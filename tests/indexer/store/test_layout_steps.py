"""The Elasticsearch layout steps (`es_mappings.migrate_layout`) on indices the first release
made (`release_1`): its invoices are re-dated to the scheme's zone in place, keeping each
document's `_version` (the version guard goes on working), the step is recorded in the
index's mapping and not run again, a concurrent change is read again rather than lost, and
an index of a later release is refused; its taxpayer index gets the status history field."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from indexer.keys import VnKey
from indexer.model import Relation, RelationKind
from indexer.registry import parse_registry_json
from indexer.store.elasticsearch import PATIENT, open_elasticsearch_store
from indexer.store.es_mappings import IndexLayout
from indexer.store.es_originals import OriginalsLayout
from indexer.store.es_registry import RegistryLayout, open_elasticsearch_registry
from indexer.store.es_steps import redate_invoices
from tests.conftest import EsTarget
from tests.factories import SELLER
from tests.indexer.store.conftest import drop_layout, fresh_prefix
from tests.indexer.store.release_1 import release_doc, release_es_indices, release_es_invoices
from tests.indexer.store.test_contract import NOW, pkg, vn

#: Printed 2026-01-01 in Vietnam; the release filed it under 2025-12-31.
NIGHT = "2025-12-31T17:30:00Z"
MORNING = "2025-12-31T09:00:00+07:00"


def _adjusted(n: int) -> Relation:
    return Relation(RelationKind.ADJUSTED_BY, vn(n).key, at=NOW)


def _invoices() -> list[dict[str, Any]]:
    """Each at state version 2 (one relation), as the release left an adjusted invoice."""
    return [
        release_doc(
            vn(number, issued_at=datetime.fromisoformat(sent), relations=(_adjusted(10 + number),)),
            sent,
        )
        for number, sent in ((1, NIGHT), (2, MORNING))
    ]


@pytest.fixture
async def release(es_target: EsTarget) -> AsyncIterator[tuple[str, AsyncElasticsearch]]:
    """A prefix holding the release's indices and two invoices at `_version` 2."""
    prefix = fresh_prefix()
    client = es_target.client_factory(es_target.url, PATIENT)
    try:
        await release_es_indices(client, prefix)
        await release_es_invoices(client, prefix, _invoices(), versions=2)
        yield prefix, client
    finally:
        for layout in (IndexLayout(prefix), RegistryLayout(prefix), OriginalsLayout(prefix)):
            await drop_layout(client, layout)
        await client.close()


async def _layout_of(client: AsyncElasticsearch, alias: str) -> list[int]:
    mappings = await client.indices.get_mapping(index=alias)
    return [int((m["mappings"].get("_meta") or {}).get("layout", 0)) for m in mappings.values()]


async def test_release_invoices_are_redated_in_place_keeping_their_versions(
    es_target: EsTarget, release: tuple[str, AsyncElasticsearch]
) -> None:
    prefix, client = release
    assert await _layout_of(client, f"{prefix}-docs") == [0]
    async with open_elasticsearch_store(
        es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
    ) as store:
        night = await client.get(index=f"{prefix}-docs", id=vn(1).doc_id)
        morning = await client.get(index=f"{prefix}-docs", id=vn(2).doc_id)
        assert (night["_source"]["issued_on"], night["_version"]) == ("2026-01-01", 2)
        assert (morning["_source"]["issued_on"], morning["_version"]) == ("2025-12-31", 2)
        assert night["_source"]["issued_at"] == "2025-12-31T17:30:00+00:00"  # as written
        # re-dated; relations.external; relations.amount
        assert await _layout_of(client, f"{prefix}-docs") == [3]
        assert [
            i.doc_id for i in await store.scan_invoices(date(2026, 1, 1), date(2026, 2, 1))
        ] == [vn(1).doc_id]
        # The version guard still takes the next state (version 3 over 2) and only it.
        stored = await store.get_invoice(vn(1).doc_id)
        assert stored is not None
        again = dataclasses.replace(stored, relations=(*stored.relations, _adjusted(21)))
        await store.commit_package(pkg("PKG-CHANGE"), [], [again])
        assert (await client.get(index=f"{prefix}-docs", id=vn(1).doc_id))["_version"] == 3
        # The release's strict mapping now takes a red-letter link's amount (step 3).
        red = Relation(RelationKind.REVERSED_BY, vn(30).key, "F-1", amount=Decimal("5.00"))
        third = dataclasses.replace(again, relations=(*again.relations, red))
        await store.commit_package(pkg("PKG-RED"), [], [third])
        stored = await store.get_invoice(vn(1).doc_id)
        assert stored is not None
        assert stored.relations[-1] == red


async def test_a_step_done_is_not_run_again(
    es_target: EsTarget, release: tuple[str, AsyncElasticsearch]
) -> None:
    prefix, client = release
    async with open_elasticsearch_store(
        es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
    ):
        pass
    # A document written after the step with the old day (as a release-1 process would)
    # is not the reopening's business: the step is recorded as done.
    source = (await client.get(index=f"{prefix}-docs", id=vn(1).doc_id))["_source"]
    await client.index(
        index=f"{prefix}-docs",
        id=vn(1).doc_id,
        document={**source, "issued_on": "2025-12-31"},
        version=2,
        version_type="external_gte",
        refresh=True,
    )
    async with open_elasticsearch_store(
        es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
    ):
        again = await client.get(index=f"{prefix}-docs", id=vn(1).doc_id)
    assert again["_source"]["issued_on"] == "2025-12-31"


async def test_a_document_changed_during_the_step_is_read_again(
    release: tuple[str, AsyncElasticsearch],
) -> None:
    """Another process changes an invoice between the step's read and its write (writing
    the old day, as a release-1 process would): the write is refused (409), the page is read
    again, and the changed state is re-dated at its own version."""
    prefix, client = release
    index = next(iter(await client.indices.get_alias(name=f"{prefix}-docs")))
    search = client.search
    changed: list[int] = []

    async def search_then_change(**kwargs: Any) -> Any:
        resp = await search(**kwargs)
        if not changed:
            source = (await client.get(index=index, id=vn(1).doc_id))["_source"]
            written = await client.index(
                index=index, id=vn(1).doc_id, document=source, version=3, version_type="external"
            )
            changed.append(int(written["_version"]))
        return resp

    client.search = search_then_change  # type: ignore[method-assign]
    try:
        await redate_invoices(client, index)
    finally:
        client.search = search  # type: ignore[method-assign]
    night = await client.get(index=index, id=vn(1).doc_id)
    assert changed == [3]
    assert (night["_source"]["issued_on"], night["_version"]) == ("2026-01-01", 3)


async def test_a_new_index_starts_at_the_current_layout(es_target: EsTarget) -> None:
    async with open_elasticsearch_store(
        es_target.url, index_prefix=fresh_prefix(), client_factory=es_target.client_factory
    ) as store:
        try:
            assert await _layout_of(store.patient, store.layout.invoices) == [3]
        finally:
            await drop_layout(store.patient, store.layout)


async def test_an_index_of_a_later_release_is_refused(
    es_target: EsTarget, release: tuple[str, AsyncElasticsearch]
) -> None:
    prefix, client = release
    index = next(iter(await client.indices.get_alias(name=f"{prefix}-docs")))
    later = len(IndexLayout(prefix).steps()[f"{prefix}-docs"]) + 1
    await client.indices.put_mapping(index=index, meta={"layout": later})
    with pytest.raises(RuntimeError, match="newer than this code"):
        async with open_elasticsearch_store(
            es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
        ):
            pass


async def test_a_release_registry_gets_the_status_history_field(
    es_target: EsTarget, release: tuple[str, AsyncElasticsearch]
) -> None:
    """The release's taxpayer mapping is strict and has no `status_history`: step 1 adds it,
    and the taxpayer the release stored keeps its status as the start of its history."""
    prefix, client = release
    await client.index(
        index=f"{prefix}-taxpayers",
        id=SELLER,
        document={
            "tax_id": SELLER,
            "name": "x",
            "status": "00",
            "status_since": None,
            "einvoice_stopped": False,
            "stopped_from": None,
            "stopped_until": None,
            "cash_register_code_ranges": [],
            "registrations": [],
            "updated_at": "2025-01-01T00:00:00+00:00",
        },
        refresh=True,
    )
    async with open_elasticsearch_registry(
        es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
    ) as registry:
        await registry.import_registry(
            parse_registry_json(
                {
                    "taxpayers": [
                        {
                            "tax_id": SELLER,
                            "name": "x",
                            "status": "01",
                            "status_since": "2025-06-01",
                        }
                    ]
                }
            )
        )
        got = (await registry.get_taxpayers([SELLER]))[SELLER]
        assert [(c.status, c.since) for c in got.statuses] == [
            ("00", None),
            ("01", date(2025, 6, 1)),
        ]
        assert await _layout_of(client, f"{prefix}-taxpayers") == [1]


async def test_a_release_index_takes_external_relations_after_its_step(
    es_target: EsTarget, release: tuple[str, AsyncElasticsearch]
) -> None:
    """Step 2 maps `relations.external` (the mapping is strict: a release index refuses the
    field until then); an external link is stored and read back as such."""
    prefix, _ = release
    legacy = VnKey(SELLER, "01GTKT0/001", "AA/21E", 123)
    link = Relation(RelationKind.REPLACES, legacy, reason="external: legacy", at=NOW, external=True)
    async with open_elasticsearch_store(
        es_target.url, index_prefix=prefix, client_factory=es_target.client_factory
    ) as store:
        await store.commit_package(pkg("PKG-EXT"), [vn(9, relations=(link,))], [])
        stored = await store.get_invoice(vn(9).doc_id)
    assert stored is not None
    assert stored.relations == (link,)
