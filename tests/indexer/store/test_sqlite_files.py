"""`write_transaction`, the one way SQLite writes are made: a COMMIT that fails for real
(a deferred foreign key still violated at COMMIT, where SQLite keeps the transaction open)
is rolled back, so the connection is usable and nothing of it is kept. `migrate`, the one
migration scheme: numbered steps in one transaction, the version read again under the lock."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from indexer.store.sqlite_files import Step, migrate, open_sqlite_file, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS children (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
"""


async def _orphan_child(conn: aiosqlite.Connection) -> None:
    """A child whose parent never comes: accepted until COMMIT checks the deferred key."""
    async with write_transaction(conn):
        await conn.execute("INSERT INTO children (id, parent) VALUES (1, 99)")
        await conn.execute("INSERT INTO parents (id) VALUES (7)")


async def _parent_then_error(conn: aiosqlite.Connection) -> None:
    async with write_transaction(conn):
        await conn.execute("INSERT INTO parents (id) VALUES (1)")
        raise LookupError


async def test_a_failed_commit_is_rolled_back_and_its_error_raised(tmp_path: Path) -> None:
    async with open_sqlite_file(tmp_path / "t.sqlite3", _SCHEMA) as conn:
        await conn.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await _orphan_child(conn)
        assert not conn.in_transaction
        async with write_transaction(conn):  # the write lock was let go
            await conn.execute("INSERT INTO parents (id) VALUES (8)")
        assert list(await conn.execute_fetchall("SELECT id FROM parents")) == [(8,)]
        assert list(await conn.execute_fetchall("SELECT id FROM children")) == []


async def test_an_error_inside_is_rolled_back_and_raised(tmp_path: Path) -> None:
    async with open_sqlite_file(tmp_path / "t.sqlite3", _SCHEMA) as conn:
        with pytest.raises(LookupError):
            await _parent_then_error(conn)
        assert not conn.in_transaction
        assert list(await conn.execute_fetchall("SELECT id FROM parents")) == []


_COUNTED = "CREATE TABLE IF NOT EXISTS runs (step INTEGER NOT NULL)"


def _counted_steps() -> tuple[Step, ...]:
    """Two steps, each leaving a row behind: a step run twice shows twice."""
    async def second(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO runs (step) VALUES (2)")

    return (_COUNTED + "; INSERT INTO runs (step) VALUES (1);", second)


async def _connect(path: Path) -> aiosqlite.Connection:
    """WAL is kept in the file: set by the first connection, the others find it."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA busy_timeout = 5000")
    await conn.execute_fetchall("PRAGMA journal_mode = WAL")
    return conn


async def _waiting_for_the_lock(conn: aiosqlite.Connection) -> asyncio.Event:
    """Set once `conn` starts its BEGIN IMMEDIATE (it then waits for the write lock): the
    version it read before is read; what it reads once the lock is its own is the point."""
    loop, started = asyncio.get_running_loop(), asyncio.Event()

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            loop.call_soon_threadsafe(started.set)

    await conn.set_trace_callback(trace)
    return started


async def test_two_connections_migrating_at_once_migrate_once(tmp_path: Path) -> None:
    """Both read version 0 while a third connection holds the write lock, then both wait for
    it: the first to get it migrates, the second reads the version again and does nothing."""
    path = tmp_path / "m.sqlite3"
    holder, first, second = [await _connect(path) for _ in range(3)]
    try:
        await holder.execute("BEGIN IMMEDIATE")
        waiting = [await _waiting_for_the_lock(c) for c in (first, second)]
        migrations = [asyncio.create_task(migrate(c, _counted_steps())) for c in (first, second)]
        await asyncio.gather(*(w.wait() for w in waiting))
        await holder.execute("COMMIT")
        assert sorted(await asyncio.gather(*migrations)) == [0, 2]  # the versions found
        assert list(await holder.execute_fetchall("SELECT step FROM runs ORDER BY step")) == [
            (1,), (2,)]
        assert list(await holder.execute_fetchall("PRAGMA user_version")) == [(2,)]
    finally:
        for conn in (holder, first, second):
            await conn.close()


async def test_a_file_part_way_gets_the_steps_after_its_version(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    conn = await _connect(path)
    try:
        assert await migrate(conn, _counted_steps()[:1]) == 0
        assert await migrate(conn, _counted_steps()) == 1
        assert await migrate(conn, _counted_steps()) == 2  # nothing left to do
        assert list(await conn.execute_fetchall("SELECT step FROM runs ORDER BY step")) == [
            (1,), (2,)]
    finally:
        await conn.close()


async def test_a_failing_step_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    async def fails(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO runs (step) VALUES (2)")
        raise sqlite3.OperationalError("disk I/O error")

    conn = await _connect(tmp_path / "m.sqlite3")
    try:
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn, (_counted_steps()[0], fails))
        assert list(await conn.execute_fetchall("PRAGMA user_version")) == [(0,)]
        assert list(await conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE name = 'runs'")) == []
    finally:
        await conn.close()


async def test_a_file_newer_than_the_steps_is_refused(tmp_path: Path) -> None:
    conn = await _connect(tmp_path / "m.sqlite3")
    try:
        await migrate(conn, _counted_steps())
        with pytest.raises(RuntimeError, match="schema 2 is newer than this code \\(1\\)"):
            await migrate(conn, _counted_steps()[:1])
    finally:
        await conn.close()
