"""Opening a store file written by an older release migrates it in place, keeping what it
holds: v3 -> v4 rebuilds the packages table as a rowid table (with WITHOUT ROWID, finding
a package id read whole notices, megabytes for large packages)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from indexer.store.protocol import PackageExistsError
from indexer.store.sqlite import _SCHEMA, SCHEMA_VERSION, open_sqlite_store
from tests.indexer.store.test_contract import pkg, vn

V3_PACKAGES = """CREATE TABLE IF NOT EXISTS packages (
    package_id  TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    notice      TEXT NOT NULL
) WITHOUT ROWID;"""


def _v3_file(path: Path) -> None:
    """A store file as release v3 left it, holding one package and its invoice."""
    start = _SCHEMA.index("-- v4:")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # as every release's store file is
        conn.executescript(_SCHEMA[:start] + V3_PACKAGES)
        conn.execute("INSERT INTO packages VALUES ('PKG-OLD', 'SENDER', 'abc',"
                     " '2026-01-02T03:04:05+00:00', '{\"result\": \"accepted\"}')")
        conn.execute("PRAGMA user_version = 3")
    conn.close()


def _packages_sql(path: Path) -> tuple[str, int]:
    with sqlite3.connect(path) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'packages'").fetchone()
        version = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    return str(sql[0]), int(version[0])


async def test_a_v3_file_keeps_its_packages_in_a_rowid_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    _v3_file(path)
    async with open_sqlite_store(path) as store:
        old = await store.get_package("PKG-OLD")
        assert old is not None
        assert (old.sender, old.digest, old.notice) == ("SENDER", "abc", {"result": "accepted"})
        await store.commit_package(pkg("PKG-NEW"), [vn(1)], [])
        with pytest.raises(PackageExistsError):  # the package id is still a unique key
            await store.commit_package(pkg("PKG-OLD"), [vn(2)], [])
        assert set(await store.get_packages(["PKG-OLD", "PKG-NEW", "PKG-NONE"])) == {
            "PKG-OLD", "PKG-NEW"}
    sql, version = _packages_sql(path)
    assert "WITHOUT ROWID" not in sql.upper()
    assert version == SCHEMA_VERSION == 4


async def test_two_connections_opening_a_v3_file_at_once_migrate_it_once(
        tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    _v3_file(path)

    async def open_and_read() -> None:
        async with open_sqlite_store(path) as store:
            assert await store.get_package("PKG-OLD") is not None

    await asyncio.gather(open_and_read(), open_and_read())
    sql, version = _packages_sql(path)
    assert ("WITHOUT ROWID" not in sql.upper(), version) == (True, SCHEMA_VERSION)


async def test_a_new_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "new.sqlite3") as store:
        await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    sql, version = _packages_sql(tmp_path / "new.sqlite3")
    assert ("WITHOUT ROWID" not in sql.upper(), version) == (True, SCHEMA_VERSION)
