"""`shared.sqlite3` in the data directory: what this process (this data directory) forwarded
to the deployment's shared state on Elasticsearch, and what it copied from it. Only a
process with `INVOICE_ES_URL` opens it; the embedded default never has one.

- `node`: the data directory's id in the deployment (random, made once): the origin of its
  outage windows, the first part of its audit entries' ids, the owner of its claims.
- `marks`: per kind of state and item, the state last confirmed in the shared store (an
  API key's revocation, a gap's count, a window's version), so each sync sends only what
  changed, and sending again after a crash changes nothing.
- `values`: single marks (how far the audit trail has been forwarded, when the last pull
  was).
- `outage_copies`: the other processes' outage windows, so they are known with the cluster
  down (`fallback.shared_outages`).

`synchronous=NORMAL`: losing the last marks in a power cut only sends their items again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from fallback.outages import WINDOW_COLUMNS
from indexer.store.sqlite_files import open_sqlite_file, write_transaction

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS node_values (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    mark TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outage_copies (
    id          INTEGER PRIMARY KEY,{WINDOW_COLUMNS},
    origin      TEXT NOT NULL,
    version     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outage_copies_end ON outage_copies (end_ts);
"""


class SharedFile:
    def __init__(self, conn: aiosqlite.Connection, node: str) -> None:
        self.conn = conn
        self.node = node
        #: One write at a time on the connection: the gaps' forward and the windows' push
        #: both set marks, and a second BEGIN inside the first one's transaction fails.
        self._writing = asyncio.Lock()

    async def value(self, name: str) -> str | None:
        rows = list(
            await self.conn.execute_fetchall(
                "SELECT value FROM node_values WHERE name = ?", (name,)
            )
        )
        return str(rows[0][0]) if rows else None

    async def set_value(self, name: str, value: str) -> None:
        async with self._writing:  # not inside another writer's transaction
            await self.conn.execute(
                "INSERT INTO node_values (name, value) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value",
                (name, value),
            )

    async def marks(self, kind: str) -> dict[str, str]:
        rows = await self.conn.execute_fetchall(
            "SELECT id, mark FROM marks WHERE kind = ?", (kind,)
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def set_marks(self, kind: str, marks: Mapping[str, str]) -> None:
        if not marks:
            return
        async with self._writing, write_transaction(self.conn):
            await self.conn.executemany(
                "INSERT INTO marks (kind, id, mark) VALUES (?, ?, ?) ON CONFLICT (kind, id) "
                "DO UPDATE SET mark = excluded.mark",
                [(kind, item, mark) for item, mark in marks.items()],
            )


async def _node(conn: aiosqlite.Connection) -> str:
    """The data directory's node id: the first process to open the file makes it."""
    await conn.execute(
        "INSERT OR IGNORE INTO node_values (name, value) VALUES ('node', ?)",
        (secrets.token_hex(6),),
    )
    rows = list(await conn.execute_fetchall("SELECT value FROM node_values WHERE name = 'node'"))
    return str(rows[0][0])


@asynccontextmanager
async def open_shared_file(path: Path) -> AsyncIterator[SharedFile]:
    async with open_sqlite_file(path, _SCHEMA, synchronous="NORMAL") as conn:
        yield SharedFile(conn, await _node(conn))
