"""The registry contract: every backend in `STORE_BACKENDS` must pass all of it.

"All or nothing" is the import path's promise on every backend: a file is parsed whole
before the store is called, so a file with a bad record changes nothing. What Elasticsearch
does when the cluster refuses an item once writing has started is in test_es_registry_originals.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from indexer.registry import RegistryError, parse_registry, parse_registry_json
from indexer.store.registry import RegistryStore
from tests.factories import BUYER, PROVIDER, SELLER

TAXPAYER: dict[str, Any] = {
    "tax_id": SELLER, "name": "Công ty Thử nghiệm", "status": "00",
    "status_since": "2019-03-01", "einvoice_stopped": True, "stopped_from": "2022-06-01",
    "stopped_until": "2022-06-30", "cash_register_code_ranges": ["ABCDE", "FGHIJ"],
    "registrations": [{"template": "1", "series": "C22TAA", "from": "2022-01-01"},
                      {"template": "2", "series": "K22TBB", "from": "2022-01-01",
                       "to": "2022-12-31"}]}
OTHER = {"tax_id": BUYER, "name": "Hộ kinh doanh", "status": "02"}
PROVIDER_ROW = {"provider_id": PROVIDER, "name": "T-VAN", "valid_from": "2021-07-01",
                "valid_to": "2027-12-31"}


async def test_a_new_registry_is_empty_and_finds_nothing(registry: RegistryStore) -> None:
    assert await registry.is_empty()
    assert await registry.get_taxpayers([SELLER, BUYER]) == {}
    assert await registry.get_taxpayers([]) == {}
    assert await registry.get_provider(PROVIDER) is None
    assert await registry.counts() == {"taxpayers": 0, "providers": 0}


async def test_every_field_round_trips(registry: RegistryStore) -> None:
    parsed = parse_registry_json({"taxpayers": [TAXPAYER, OTHER], "providers": [PROVIDER_ROW]})
    await registry.import_registry(parsed)
    assert not await registry.is_empty()
    assert await registry.get_taxpayers([SELLER, BUYER, "0102671977", ""]) == {
        SELLER: parsed.taxpayers[0], BUYER: parsed.taxpayers[1]}
    assert await registry.get_provider(PROVIDER) == parsed.providers[0]
    assert await registry.get_provider("nobody") is None
    assert await registry.get_provider("") is None
    assert await registry.counts() == {"taxpayers": 2, "providers": 1}


@pytest.mark.parametrize("content", [{"taxpayers": [OTHER]}, {"providers": [PROVIDER_ROW]}])
async def test_either_list_alone_makes_the_registry_non_empty(
        registry: RegistryStore, content: dict[str, Any]) -> None:
    await registry.import_registry(parse_registry_json(content))
    assert not await registry.is_empty()


async def test_imports_upsert_by_id(registry: RegistryStore) -> None:
    await registry.import_registry(parse_registry_json(
        {"taxpayers": [TAXPAYER, OTHER], "providers": [PROVIDER_ROW]}))
    await registry.import_registry(parse_registry_json(
        {"taxpayers": [{**TAXPAYER, "status": "05", "registrations": []}],
         "providers": [{**PROVIDER_ROW, "valid_to": None}]}))
    got = await registry.get_taxpayers([SELLER, BUYER])
    assert got[SELLER].status == "05"
    assert got[SELLER].registrations == (), "an upsert replaces the record, it does not merge"
    assert got[BUYER].status == "02", "records absent from a later file are kept"
    provider = await registry.get_provider(PROVIDER)
    assert provider is not None
    assert provider.valid_to is None
    assert await registry.counts() == {"taxpayers": 2, "providers": 1}


async def test_the_same_id_twice_in_one_file_keeps_the_last(registry: RegistryStore) -> None:
    await registry.import_registry(parse_registry_json(
        {"taxpayers": [TAXPAYER, {**TAXPAYER, "status": "04"}]}))
    assert (await registry.get_taxpayers([SELLER]))[SELLER].status == "04"
    assert await registry.counts() == {"taxpayers": 1, "providers": 0}


async def test_a_file_with_a_bad_record_changes_nothing(registry: RegistryStore) -> None:
    await registry.import_registry(parse_registry_json({"taxpayers": [TAXPAYER]}))
    before = await registry.get_taxpayers([SELLER])
    bad = (b'{"taxpayers": [{"tax_id": "0100109106", "name": "x", "status": "05"},'
           b' {"tax_id": "0314409058-002", "name": "y", "status": "08"}],'
           b' "providers": [{"provider_id": "0101300842", "name": "T-VAN",'
           b' "valid_from": "2021-07-01"}]}')
    with pytest.raises(RegistryError, match=r"taxpayers\[1\]: status '08'"):
        await registry.import_registry(parse_registry(bad, "application/json"))
    assert await registry.get_taxpayers([SELLER, BUYER]) == before
    assert await registry.get_provider(PROVIDER) is None
    assert await registry.counts() == {"taxpayers": 1, "providers": 0}


async def test_an_empty_file_imports_nothing(registry: RegistryStore) -> None:
    await registry.import_registry(parse_registry_json({}))
    assert await registry.is_empty()
    assert await registry.counts() == {"taxpayers": 0, "providers": 0}


async def test_imports_keep_each_taxpayers_status_history(registry: RegistryStore) -> None:
    """A dated status is recorded over what the store holds (`record_status`), in the
    import's own transaction on SQLite and over a realtime read on Elasticsearch."""
    for status, since in (("00", None), ("01", "2025-06-01"), ("01", "2025-06-01")):
        await registry.import_registry(parse_registry_json(
            {"taxpayers": [{**OTHER, "status": status, "status_since": since}]}))
    await registry.import_registry(parse_registry_json({"taxpayers": [TAXPAYER]}))
    await registry.import_registry(parse_registry_json({"taxpayers": [  # one id twice
        {**TAXPAYER, "status": "05", "status_since": "2025-04-01"},
        {**TAXPAYER, "status": "00", "status_since": "2025-05-01"}]}))
    got = await registry.get_taxpayers([SELLER, BUYER])
    assert [(c.status, c.since) for c in got[BUYER].statuses] == [
        ("00", None), ("01", date(2025, 6, 1))]
    assert [(c.status, c.since) for c in got[SELLER].statuses] == [
        ("00", date(2019, 3, 1)), ("05", date(2025, 4, 1)), ("00", date(2025, 5, 1))]
    assert [got[SELLER].status_on(date(2025, m, 15)) for m in (3, 4, 5)] == ["00", "05", "00"]
