"""The access database: API keys (hashed) and the audit trail, in one SQLite file beside the
invoice store. Parameterised SQL only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from indexer.store.sqlite_files import READ_PRAGMAS, open_sqlite_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT,
    revoked_at  TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    at_ts   REAL NOT NULL,
    key_id  TEXT,
    role    TEXT,
    action  TEXT NOT NULL,
    target  TEXT,
    outcome TEXT,
    client  TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ts);
CREATE INDEX IF NOT EXISTS audit_key ON audit (key_id, at_ts);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, at_ts);
"""


@asynccontextmanager
async def open_access_db(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """`synchronous=NORMAL`: a power cut may lose the last audit entries, never corrupt the
    file; key changes are rare and checkpointed quickly."""
    async with open_sqlite_file(path, _SCHEMA, synchronous="NORMAL") as conn:
        # The audit flush inserts into three indexes; `audit_target`'s entries land on
        # random pages, which the default 2 MiB cache does not keep: read them through the
        # mapping and keep more of them (the store's read settings).
        for pragma in READ_PRAGMAS:
            await conn.execute(pragma)
        yield conn
