"""What only the SQLite store promises about its invoice cache: this store's own commits are
seen by the next read, another connection's (another process's) within `recheck_seconds`."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
import time
from pathlib import Path

import pytest

from indexer.model import Lifecycle
from indexer.store.sqlite import SqliteUnavailable, open_sqlite_store
from tests.indexer.store.test_contract import pkg, vn

REPO = Path(__file__).resolve().parents[3]

RECHECK = 0.05


async def test_cached_reads_follow_commits_from_any_connection(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    async with open_sqlite_store(path, recheck_seconds=RECHECK) as reader_side, \
            open_sqlite_store(path) as other:
        original = vn(1)
        assert await reader_side.get_invoice(original.doc_id) is None  # a cached miss
        await other.commit_package(pkg("PKG-1"), [original], [])
        await asyncio.sleep(RECHECK)
        assert await reader_side.get_invoice(original.doc_id) == original
        cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED)
        await other.commit_package(pkg("PKG-2"), [], [cancelled])
        await asyncio.sleep(RECHECK)
        got = await reader_side.get_invoice(original.doc_id)
        assert got is not None
        assert got.lifecycle is Lifecycle.CANCELLED


async def test_own_commits_are_read_at_once_however_long_the_recheck(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "own.sqlite3", recheck_seconds=3600) as store:
        original = vn(1)
        assert await store.get_invoice(original.doc_id) is None  # a cached miss
        await store.commit_package(pkg("PKG-1"), [original], [])
        assert await store.get_invoice(original.doc_id) == original
        cancelled = dataclasses.replace(original, lifecycle=Lifecycle.CANCELLED)
        await store.commit_package(pkg("PKG-2"), [], [cancelled])
        got = await store.get_invoice(original.doc_id)
        assert got is not None
        assert got.lifecycle is Lifecycle.CANCELLED


async def test_another_connections_commit_waits_for_the_recheck(tmp_path: Path) -> None:
    """The bound is real in both directions: within `recheck_seconds` the cached state may be
    served (that is the saving), after it never."""
    path = tmp_path / "shared.sqlite3"
    async with open_sqlite_store(path, recheck_seconds=3600) as reader_side, \
            open_sqlite_store(path) as other:
        original = vn(1)
        assert await reader_side.get_invoice(original.doc_id) is None  # checked and cached
        await other.commit_package(pkg("PKG-1"), [original], [])
        assert await reader_side.get_invoice(original.doc_id) is None  # within the hour
        await reader_side.commit_package(pkg("PKG-2"), [vn(2)], [])  # its own commit
        assert await reader_side.get_invoice(original.doc_id) == original


@pytest.mark.chaos
async def test_a_held_wal_index_lock_is_unavailable_not_a_crash_nor_a_stalled_loop(
        tmp_path: Path) -> None:
    """Another process holding the WAL-index locks (as WAL recovery does). The first read on
    the event loop waits out SQLite's own ~10 s retry (nothing can know beforehand) and
    fails as `SqliteUnavailable` (the breaker counts it, the lookup goes to the replica),
    never as a bare `sqlite3` error (a 500). After that slow read, point reads go through
    the writer's thread, so the next one can be timed out while the loop goes on, and so can
    a health probe; once the lock is let go, the next probe puts reads back on the loop."""
    path = tmp_path / "locked.sqlite3"
    async with open_sqlite_store(path, recheck_seconds=0) as store:
        await store.commit_package(pkg("PKG-1"), [vn(1)], [])
        assert await store.get_invoice(vn(1).doc_id) == vn(1)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sqlite_fault", "wal-lock", str(path), "60",
            cwd=REPO, stdout=asyncio.subprocess.PIPE)
        try:
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"held"
            with pytest.raises(SqliteUnavailable):
                await store.get_invoice(vn(1).doc_id)
            assert not store.reads_inline
            ticks: list[float] = []

            async def ticker() -> None:
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.05)

            ticking = asyncio.create_task(ticker())
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.get_invoice(vn(1).doc_id), 1.0)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.ping(), 1.0)
            ticking.cancel()
            assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5  # the loop went on
        finally:
            holder.terminate()
            await holder.wait()
        assert not store.reads_inline
        for _ in range(40):  # as the health monitor probes: until one is fast again
            await store.ping()  # (the first may wait for reads still queued on the thread)
            if store.reads_inline:
                break
            await asyncio.sleep(0.5)
        assert store.reads_inline
        assert await store.get_invoice(vn(1).doc_id) == vn(1)
