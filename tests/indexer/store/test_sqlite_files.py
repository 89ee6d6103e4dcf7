"""`write_transaction`, the one way SQLite writes are made: a COMMIT that fails for real
(a deferred foreign key still violated at COMMIT, where SQLite keeps the transaction open)
is rolled back, so the connection is usable and nothing of it is kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from indexer.store.sqlite_files import open_sqlite_file, write_transaction

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
