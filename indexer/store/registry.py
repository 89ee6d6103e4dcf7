"""Where the registry lives: the `RegistryStore` protocol and its SQLite backend (its own
file, `registry.sqlite3`, beside the invoice store). Imports upsert by id, in one
transaction: a file that fails to parse changes nothing. A taxpayer's status is recorded
over the statuses stored for it (`indexer.registry.record_status`), read in the same
transaction, so the registry keeps each taxpayer's status history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiosqlite

from indexer.registry import (
    Provider,
    RegistryImport,
    Taxpayer,
    provider_from_dict,
    provider_to_dict,
    recorded_taxpayers,
    taxpayer_from_dict,
    taxpayer_to_dict,
)
from indexer.store.sqlite_files import open_sqlite_file, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taxpayers (
    tax_id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS providers (
    provider_id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
"""


class RegistryStore(Protocol):
    async def import_registry(self, registry: RegistryImport) -> None: ...

    async def is_empty(self) -> bool: ...

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]: ...

    async def get_provider(self, provider_id: str) -> Provider | None: ...

    async def counts(self) -> dict[str, int]: ...


class SqliteRegistry:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def import_registry(self, registry: RegistryImport) -> None:
        now = datetime.now(UTC).isoformat()
        async with write_transaction(self._conn):
            stored = await self.get_taxpayers(t.tax_id for t in registry.taxpayers)
            taxpayers = recorded_taxpayers(stored, registry.taxpayers)
            await self._conn.executemany(
                "INSERT INTO taxpayers (tax_id, doc, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (tax_id) DO UPDATE SET doc = excluded.doc,"
                " updated_at = excluded.updated_at",
                [(t.tax_id, json.dumps(taxpayer_to_dict(t), ensure_ascii=False), now)
                 for t in taxpayers.values()])
            await self._conn.executemany(
                "INSERT INTO providers (provider_id, doc, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (provider_id) DO UPDATE SET doc = excluded.doc,"
                " updated_at = excluded.updated_at",
                [(p.provider_id, json.dumps(provider_to_dict(p), ensure_ascii=False), now)
                 for p in registry.providers])

    async def is_empty(self) -> bool:
        rows = list(await self._conn.execute_fetchall(
            "SELECT EXISTS (SELECT 1 FROM taxpayers) OR EXISTS (SELECT 1 FROM providers)"))
        return not rows[0][0]

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]:
        rows = await self._conn.execute_fetchall(
            "SELECT doc FROM taxpayers WHERE tax_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(tax_ids))),))
        taxpayers = (taxpayer_from_dict(json.loads(row[0])) for row in rows)
        return {t.tax_id: t for t in taxpayers}

    async def get_provider(self, provider_id: str) -> Provider | None:
        rows = list(await self._conn.execute_fetchall(
            "SELECT doc FROM providers WHERE provider_id = ?", (provider_id,)))
        return provider_from_dict(json.loads(rows[0][0])) if rows else None

    async def counts(self) -> dict[str, int]:
        rows = list(await self._conn.execute_fetchall(
            "SELECT (SELECT count(*) FROM taxpayers), (SELECT count(*) FROM providers)"))
        return {"taxpayers": int(rows[0][0]), "providers": int(rows[0][1])}


@asynccontextmanager
async def open_sqlite_registry(path: Path) -> AsyncIterator[SqliteRegistry]:
    async with open_sqlite_file(path, _SCHEMA) as conn:
        yield SqliteRegistry(conn)
