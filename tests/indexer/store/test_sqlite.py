"""What only the SQLite store promises: its invoice cache never outlives a commit made by
another connection, whether this process's writer or another process's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from indexer.model import Lifecycle
from indexer.store.sqlite import open_sqlite_store
from tests.indexer.store.test_contract import pkg, vn


async def test_cached_reads_follow_commits_from_any_connection(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    async with open_sqlite_store(path) as reader_side, open_sqlite_store(path) as other:
        original = vn(1)
        assert await reader_side.get_invoice(original.doc_id) is None  # a cached miss
        await other.commit_package(pkg("PKG-1"), [original], [])
        assert await reader_side.get_invoice(original.doc_id) == original
        cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED)
        await other.commit_package(pkg("PKG-2"), [], [cancelled])
        got = await reader_side.get_invoice(original.doc_id)
        assert got is not None
        assert got.lifecycle is Lifecycle.CANCELLED
        await reader_side.commit_package(pkg("PKG-3"), [vn(2)], [])
        assert await reader_side.get_invoice(vn(2).doc_id) == vn(2)
