"""Original documents (the XML of each accepted invoice), kept retrievable.

Keyed by (doc id, package id): originals are written before the package commits, so a
package that then fails leaves at most an unreferenced row, and the original served for an
invoice is always the one of the package that was accepted for it. Its own SQLite file,
`originals.sqlite3`, beside the invoice store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import aiosqlite

from indexer.store.sqlite_files import open_sqlite_file, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS originals (
    doc_id TEXT NOT NULL, package_id TEXT NOT NULL, media_type TEXT NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (doc_id, package_id)) WITHOUT ROWID;
"""


class OriginalStore(Protocol):
    async def put_many(self, originals: Iterable[tuple[str, str, bytes]]) -> None:
        """(doc id, package id, XML bytes); re-putting the same pair keeps the first."""

    async def get(self, doc_id: str, package_id: str) -> bytes | None: ...


class SqliteOriginals:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def put_many(self, originals: Iterable[tuple[str, str, bytes]]) -> None:
        async with write_transaction(self._conn):
            await self._conn.executemany(
                "INSERT OR IGNORE INTO originals (doc_id, package_id, media_type, body)"
                " VALUES (?, ?, 'application/xml', ?)", list(originals))

    async def get(self, doc_id: str, package_id: str) -> bytes | None:
        rows = list(await self._conn.execute_fetchall(
            "SELECT body FROM originals WHERE doc_id = ? AND package_id = ?",
            (doc_id, package_id)))
        return bytes(rows[0][0]) if rows else None


@asynccontextmanager
async def open_sqlite_originals(path: Path) -> AsyncIterator[SqliteOriginals]:
    async with open_sqlite_file(path, _SCHEMA) as conn:
        yield SqliteOriginals(conn)
