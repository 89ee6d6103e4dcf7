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
#: Step 2: the audit indexes no query used. Every read of the trail names its filters as
#: `(? IS NULL OR key_id = ?)` (`AuditTrail.query`, check_count among them), which SQLite
#: cannot look up in an index: it walks `audit_at` newest first, as the purge (`at_ts <`)
#: does; the shipper reads by `id`. Yet each flushed row went into both, `audit_target`'s
#: entries on random pages: the flush's writer CPU per row 5.7 -> 3.4 us on a new file, 14.1
#: -> 3.4 at 200,000 rows (bench/README.md "The audit trail's writes"). Dropped, no plan
#: changes (EXPLAIN QUERY PLAN in tests/verify/access/test_audit_layout.py).
_DROP_UNUSED_AUDIT_INDEXES = """
DROP INDEX IF EXISTS audit_key;
DROP INDEX IF EXISTS audit_target;
"""
LAYOUT = (_SCHEMA, _DROP_UNUSED_AUDIT_INDEXES)


@asynccontextmanager
async def open_access_db(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """`synchronous=NORMAL`: a power cut may lose the last audit entries, never corrupt the
    file; key changes are rare and checkpointed quickly."""
    async with open_sqlite_file(path, LAYOUT, synchronous="NORMAL") as conn:
        # The store's read settings: pages read through the mapping, more of them kept
        # (chosen when the audit flush also filled two indexes on random pages; the trail's
        # reads and the key checks still read through them).
        for pragma in READ_PRAGMAS:
            await conn.execute(pragma)
        yield conn
