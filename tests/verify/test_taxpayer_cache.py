"""The request path's registry reads (verify/lookup/taxpayers.py) over a real SQLite
registry: a seller's record is kept for TTL_S, an import through the cache is in force at
once, one made past it (another process) once the record's time is up."""

from __future__ import annotations

from pathlib import Path

from indexer.registry import parse_registry_json
from indexer.store.registry import open_sqlite_registry
from verify.lookup.taxpayers import TTL_S, CachedRegistry

SELLER, UNKNOWN = "0100109106", "0101300842"


def _status(status: str) -> dict[str, object]:
    return {"taxpayers": [{"tax_id": SELLER, "name": "Công ty Thử nghiệm", "status": status}]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_record_is_kept_for_its_time_then_read_again(tmp_path: Path) -> None:
    clock = Clock()
    async with open_sqlite_registry(tmp_path / "registry.sqlite3") as store:
        await store.import_registry(parse_registry_json(_status("00")))
        cached = CachedRegistry(store, clock=clock)
        first = await cached.get_taxpayers([SELLER, UNKNOWN])
        assert first[SELLER].status == "00"
        assert UNKNOWN not in first
        # Another process imports (straight into the store, past this cache).
        await store.import_registry(parse_registry_json(
            {"taxpayers": [*_status("06")["taxpayers"],  # type: ignore[misc]
                           {"tax_id": UNKNOWN, "name": "Mới", "status": "00"}]}))
        clock.now += TTL_S / 2
        kept = await cached.get_taxpayers([SELLER, UNKNOWN])
        assert kept[SELLER].status == "00"
        assert UNKNOWN not in kept  # "not in the registry" is kept too
        clock.now += TTL_S
        fresh = await cached.get_taxpayers([SELLER, UNKNOWN])
        assert fresh[SELLER].status == "06"
        assert fresh[UNKNOWN].status == "00"


async def test_an_import_through_the_cache_is_in_force_at_once(tmp_path: Path) -> None:
    clock = Clock()
    async with open_sqlite_registry(tmp_path / "registry.sqlite3") as store:
        cached = CachedRegistry(store, clock=clock)
        await cached.import_registry(parse_registry_json(_status("00")))
        assert (await cached.get_taxpayers([SELLER]))[SELLER].status == "00"
        await cached.import_registry(parse_registry_json(_status("06")))
        assert (await cached.get_taxpayers([SELLER]))[SELLER].status == "06"
        assert await cached.counts() == {"taxpayers": 1, "providers": 0}
        assert not await cached.is_empty()

