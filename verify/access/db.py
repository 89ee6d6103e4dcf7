"""The access database: API keys (hashed) and the audit trail, in one SQLite file beside the
invoice store. Parameterised SQL only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

SCHEMA_VERSION = 1
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
    """WAL, and `synchronous=NORMAL`: a power cut may lose the last audit entries, never
    corrupt the file; key changes are rare and checkpointed quickly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        rows = list(await conn.execute_fetchall("PRAGMA user_version"))
        if int(rows[0][0]) < SCHEMA_VERSION:
            await conn.executescript(_SCHEMA)
            await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        yield conn
    finally:
        await conn.close()
