"""The read connections of the hot path map their file and keep a larger page cache
(`READ_PRAGMAS`): the store's inline reader and the access/audit database. That reads stay
right with it is the other store tests' business (they run with it on)."""

from __future__ import annotations

from pathlib import Path

from indexer.store.sqlite import open_sqlite_store
from indexer.store.sqlite_files import READ_CACHE_KIB, READ_MMAP_BYTES
from verify.access.db import open_access_db


async def test_the_store_reader_maps_its_file(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "invoices.sqlite3") as store:
        reader = store._reader  # the setting is the connection's own
        assert reader.execute("PRAGMA mmap_size").fetchone()[0] == READ_MMAP_BYTES
        assert reader.execute("PRAGMA cache_size").fetchone()[0] == -READ_CACHE_KIB


async def test_the_access_database_maps_its_file(tmp_path: Path) -> None:
    async with open_access_db(tmp_path / "access.sqlite3") as conn:
        assert list(await conn.execute_fetchall("PRAGMA mmap_size")) == [(READ_MMAP_BYTES,)]
        assert list(await conn.execute_fetchall("PRAGMA cache_size")) == [(-READ_CACHE_KIB,)]
