"""Opening the small SQLite files beside the invoice store (registry, originals, access):
WAL, a busy timeout, the durability each one needs, and its idempotent schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite

_SYNCHRONOUS = {"FULL": "PRAGMA synchronous = FULL", "NORMAL": "PRAGMA synchronous = NORMAL"}


@asynccontextmanager
async def open_sqlite_file(path: Path, schema: str, *,
                           synchronous: Literal["FULL", "NORMAL"] = "FULL",
                           ) -> AsyncIterator[aiosqlite.Connection]:
    """`FULL`: a commit is on disk before it returns (what was acknowledged stays).
    `NORMAL`: a power cut may lose the last commits, never corrupt the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(_SYNCHRONOUS[synchronous])
        await conn.executescript(schema)
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def write_transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """One write transaction (`BEGIN IMMEDIATE`: the write lock taken up front): committed,
    or rolled back on any exception, a failed COMMIT included, unless SQLite already rolled
    it back itself; the original error is what is raised."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
