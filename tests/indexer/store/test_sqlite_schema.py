"""Opening a store file written by an older release migrates it in place through the
numbered steps (`migrate`), keeping what it holds, to the layout a new file gets: v2 adds the
month-scan index, v3 the Chinese numbering index, v4 rebuilds the packages table as a rowid
table (with WITHOUT ROWID, finding a package id read whole notices, megabytes for large
packages)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from indexer.codec import DOC_FIELDS, invoice_to_doc
from indexer.store.protocol import PackageExistsError
from indexer.store.sqlite import _LAYOUT, SCHEMA_VERSION, open_sqlite_store
from tests.indexer.store.test_contract import pkg, vn

_INSERT_INVOICE = (f"INSERT INTO invoices ({', '.join(DOC_FIELDS)}) VALUES"
                   f" ({', '.join(':' + f for f in DOC_FIELDS)})")


def _old_file(path: Path, version: int) -> None:
    """A store file as release `version` left it, holding one package and its invoice."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # as every release's store file is
        for step in _LAYOUT[:version]:
            conn.executescript(step)
        conn.execute("INSERT INTO packages VALUES ('PKG-OLD', 'SENDER', 'abc',"
                     " '2026-01-02T03:04:05+00:00', '{\"result\": \"accepted\"}')")
        conn.execute(_INSERT_INVOICE, invoice_to_doc(vn(1, package_id="PKG-OLD")))
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def _layout(path: Path) -> tuple[set[tuple[str, str, str]], str, int]:
    """The tables and indexes (with their SQL, but the packages table's), that table's SQL,
    the version."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    packages = next(str(sql) for _, name, sql in rows if name == "packages")
    return ({(t, n, s if n != "packages" else "") for t, n, s in rows}, packages,
            int(version[0]))


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_an_older_file_keeps_its_rows_and_gets_the_new_layout(
        tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.sqlite3"
    _old_file(path, version)
    async with open_sqlite_store(path) as store:
        old = await store.get_package("PKG-OLD")
        assert old is not None
        assert (old.sender, old.digest, old.notice) == ("SENDER", "abc", {"result": "accepted"})
        assert await store.get_invoice(vn(1).doc_id) == vn(1, package_id="PKG-OLD")
        await store.commit_package(pkg("PKG-NEW"), [vn(2)], [])
        with pytest.raises(PackageExistsError):  # the package id is still a unique key
            await store.commit_package(pkg("PKG-OLD"), [vn(3)], [])
        assert set(await store.get_packages(["PKG-OLD", "PKG-NEW", "PKG-NONE"])) == {
            "PKG-OLD", "PKG-NEW"}
    async with open_sqlite_store(tmp_path / "new.sqlite3"):
        pass
    objects, packages, found = _layout(path)
    assert "WITHOUT ROWID" not in packages.upper()
    assert (objects, found) == (_layout(tmp_path / "new.sqlite3")[0], SCHEMA_VERSION)
    assert SCHEMA_VERSION == 4  # the numbering of the files out there


async def test_two_connections_opening_a_v3_file_at_once_migrate_it_once(
        tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    _old_file(path, 3)

    async def open_and_read() -> None:
        async with open_sqlite_store(path) as store:
            assert await store.get_package("PKG-OLD") is not None

    await asyncio.gather(open_and_read(), open_and_read())
    _, packages, version = _layout(path)
    assert ("WITHOUT ROWID" not in packages.upper(), version) == (True, SCHEMA_VERSION)


async def test_a_new_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "new.sqlite3") as store:
        await store.commit_package(pkg("PKG-1"), [vn(1)], [])
    _, packages, version = _layout(tmp_path / "new.sqlite3")
    assert ("WITHOUT ROWID" not in packages.upper(), version) == (True, SCHEMA_VERSION)


async def test_a_file_of_a_later_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "later.sqlite3"
    _old_file(path, SCHEMA_VERSION)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this code"):
        async with open_sqlite_store(path):
            pass
