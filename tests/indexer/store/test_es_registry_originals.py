"""What only the Elasticsearch registry and originals stores promise: their layout, the
document shapes, how refused items are reported, and opening while the cluster is gone.
Backend-neutral behaviour is in test_registry_contract.py and test_originals_contract.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from indexer.registry import parse_registry_json, taxpayer_to_dict
from indexer.store.elasticsearch import ElasticsearchUnavailable
from indexer.store.es_bulk import BulkWriteError
from indexer.store.es_mappings import first_index
from indexer.store.es_originals import (
    ElasticsearchOriginals,
    open_elasticsearch_originals,
    original_id,
)
from indexer.store.es_registry import ElasticsearchRegistry, open_elasticsearch_registry
from tests.factories import PROVIDER, SELLER
from tests.indexer.store.conftest import EsTarget, drop_layout, fresh_prefix
from tests.indexer.store.plain_json import plain_json_client
from tests.indexer.store.test_elasticsearch import HANG_GUARD_S, closed_port_url
from tests.indexer.store.test_registry_contract import PROVIDER_ROW, TAXPAYER

DOC = "vn:0100109106:1:C22TAA:1"


@pytest.fixture
async def es_registry(es_target: EsTarget) -> AsyncIterator[ElasticsearchRegistry]:
    async with open_elasticsearch_registry(es_target.url, index_prefix=fresh_prefix(),
                                           client_factory=es_target.client_factory) as store:
        try:
            yield store
        finally:
            await drop_layout(store.patient, store.layout)


@pytest.fixture
async def es_originals(es_target: EsTarget) -> AsyncIterator[ElasticsearchOriginals]:
    async with open_elasticsearch_originals(es_target.url, index_prefix=fresh_prefix(),
                                            client_factory=es_target.client_factory) as store:
        try:
            yield store
        finally:
            await drop_layout(store.patient, store.layout)


async def test_registry_layout_is_strict_templates_and_write_aliases(
        es_registry: ElasticsearchRegistry) -> None:
    layout = es_registry.layout
    assert set(layout.templates()) == {f"{layout.prefix}-taxpayers",
                                       f"{layout.prefix}-providers"}
    for alias in layout.templates():
        templates = await es_registry.patient.indices.get_index_template(name=alias)
        [template] = templates["index_templates"]
        assert template["index_template"]["template"]["mappings"]["dynamic"] == "strict"
        aliases = await es_registry.patient.indices.get_alias(name=alias)
        assert list(aliases) == [first_index(alias)]


async def test_a_taxpayer_is_stored_as_the_import_format_under_its_tax_id(
        es_registry: ElasticsearchRegistry) -> None:
    parsed = parse_registry_json({"taxpayers": [TAXPAYER], "providers": [PROVIDER_ROW]})
    await es_registry.import_registry(parsed)
    doc = await es_registry.patient.get(index=es_registry.layout.taxpayers, id=SELLER)
    source = dict(doc["_source"])
    assert source.pop("updated_at")
    assert source == taxpayer_to_dict(parsed.taxpayers[0])
    assert (await es_registry.patient.get(index=es_registry.layout.providers,
                                          id=PROVIDER))["found"]


async def test_refused_items_are_raised_with_their_ids_and_the_rest_stays(
        es_registry: ElasticsearchRegistry) -> None:
    """No transaction: with the providers index refusing writes, the taxpayers land and the
    providers are named in the error; importing the file again once writes work finishes it."""
    providers = es_registry.layout.providers
    parsed = parse_registry_json({"taxpayers": [TAXPAYER], "providers": [PROVIDER_ROW]})
    await es_registry.patient.indices.put_settings(
        index=providers, settings={"index.blocks.write": True})
    try:
        with pytest.raises(BulkWriteError) as caught:
            await es_registry.import_registry(parsed)
    finally:
        await es_registry.patient.indices.put_settings(
            index=providers, settings={"index.blocks.write": False})
    assert caught.value.ids == [PROVIDER]
    assert caught.value.failures[0].status == 403
    assert set(await es_registry.get_taxpayers([SELLER])) == {SELLER}
    assert await es_registry.get_provider(PROVIDER) is None
    await es_registry.import_registry(parsed)
    assert await es_registry.counts() == {"taxpayers": 1, "providers": 1}


async def test_an_original_is_a_binary_body_under_an_id_derived_from_its_pair(
        es_originals: ElasticsearchOriginals) -> None:
    alias = es_originals.layout.originals
    mapping = await es_originals.patient.indices.get_mapping(index=alias)
    [index] = mapping.values()
    assert index["mappings"]["properties"]["body"] == {"type": "binary"}
    await es_originals.put_many([(DOC, "PKG-1", b"<HDon/>")])
    doc = await es_originals.patient.get(index=alias, id=original_id(DOC, "PKG-1"))
    assert doc["_source"]["body"] == base64.b64encode(b"<HDon/>").decode()
    assert (doc["_source"]["doc_id"], doc["_source"]["package_id"]) == (DOC, "PKG-1")
    assert len(original_id("x" * 600, "y" * 600)) == 64, "any pair fits the id limit"


async def test_originals_refused_other_than_as_kept_are_raised(
        es_originals: ElasticsearchOriginals) -> None:
    alias = es_originals.layout.originals
    await es_originals.patient.indices.put_settings(
        index=alias, settings={"index.blocks.write": True})
    try:
        with pytest.raises(BulkWriteError) as caught:
            await es_originals.put_many([(DOC, "PKG-1", b"<HDon/>")])
    finally:
        await es_originals.patient.indices.put_settings(
            index=alias, settings={"index.blocks.write": False})
    assert caught.value.ids == [original_id(DOC, "PKG-1")]


async def test_a_dead_cluster_is_reported_unavailable() -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        async with open_elasticsearch_registry(closed_port_url(),
                                               client_factory=plain_json_client) as registry, \
                open_elasticsearch_originals(closed_port_url(),
                                             client_factory=plain_json_client) as originals:
            assert not registry.layout_ready
            assert not originals.layout_ready
            with pytest.raises(ElasticsearchUnavailable):
                await registry.is_empty()
            with pytest.raises(ElasticsearchUnavailable):
                await registry.get_provider(PROVIDER)
            with pytest.raises(ElasticsearchUnavailable):
                await registry.import_registry(parse_registry_json({"taxpayers": [TAXPAYER]}))
            with pytest.raises(ElasticsearchUnavailable):
                await originals.get(DOC, "PKG-1")
            with pytest.raises(ElasticsearchUnavailable):
                await originals.put_many([(DOC, "PKG-1", b"<HDon/>")])
