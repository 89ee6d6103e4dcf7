"""Opening a store file written by an older release migrates it in place through the
numbered steps (`migrate`), keeping what it holds, to the layout a new file gets: v2 adds the
month-scan index, v3 the Chinese numbering index, v4 rebuilds the packages table as a rowid
table (with WITHOUT ROWID, finding a package id read whole notices, megabytes for large
packages), v5 re-dates every invoice's `issued_on` to the day in the scheme's zone (v4 and
before wrote the day of the sender's offset)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest

from indexer.codec import DOC_FIELDS, invoice_to_doc
from indexer.store.protocol import PackageExistsError
from indexer.store.sqlite import _LAYOUT, SCHEMA_VERSION, open_sqlite_store
from tests.indexer.store.release_1 import release_doc, release_sqlite_file
from tests.indexer.store.test_contract import cn, pkg, vn

_INSERT_INVOICE = (f"INSERT INTO invoices ({', '.join(DOC_FIELDS)}) VALUES"
                   f" ({', '.join(':' + f for f in DOC_FIELDS)})")


def _old_file(path: Path, version: int) -> None:
    """A store file as release `version` left it, holding one package and its invoice."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # as every release's store file is
        for step in _LAYOUT[:version]:
            assert isinstance(step, str)
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


@pytest.mark.parametrize("version", [1, 2, 3, 4])
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
    assert SCHEMA_VERSION == 5  # the numbering of the files out there


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
    _old_file(path, 4)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this code"):
        async with open_sqlite_store(path):
            pass


#: (invoice, as sent, the day the release filed it under, its day in the scheme's zone)
_SENT = [
    (vn(1), "2025-12-31T17:30:00Z", "2025-12-31", "2026-01-01"),
    (vn(2), "2025-12-31T16:59:59+00:00", "2025-12-31", "2025-12-31"),
    (vn(3), "2026-01-01T00:30:00+07:00", "2026-01-01", "2026-01-01"),
    (vn(4), "2026-01-01T01:00:00+09:00", "2026-01-01", "2025-12-31"),
    (cn(None, "25442000000014209621"), "2024-12-31T16:30:00Z", "2024-12-31", "2025-01-01"),
]


async def test_v5_redates_the_invoices_of_a_release_file(tmp_path: Path) -> None:
    path = tmp_path / "release.sqlite3"
    docs = [release_doc(dataclasses.replace(inv, issued_at=datetime.fromisoformat(sent)), sent)
            for inv, sent, _, _ in _SENT]
    assert [d["issued_on"] for d in docs] == [old for _, _, old, _ in _SENT]
    release_sqlite_file(path, docs)
    async with open_sqlite_store(path) as store:
        assert [(i.doc_id, i.issued_on.isoformat())
                for i in await store.scan_invoices(date(2025, 1, 1), date(2027, 1, 1))] == [
            (inv.doc_id, new) for inv, _, _, new in sorted(_SENT, key=lambda s: s[0].doc_id)]
        assert [i.doc_id for i in await store.scan_invoices(date(2026, 1, 1),
                                                            date(2026, 1, 2))] == [
            vn(1).doc_id, vn(3).doc_id]
    with sqlite3.connect(path) as conn:
        stored = dict(conn.execute("SELECT doc_id, issued_on FROM invoices").fetchall())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert (stored, version) == ({inv.doc_id: new for inv, _, _, new in _SENT}, SCHEMA_VERSION)
