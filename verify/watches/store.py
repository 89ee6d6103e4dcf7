"""The watches and their events in a SQLite file of the data directory (`watches.sqlite3`).

Embedded default and, for now, every deployment: with `INVOICE_ES_URL` each process keeps
its own file, so a watch is noticed by the process it was made on (and by the command-line
reconciler of that data directory), not by the others (docs/watches.md#deployments).

One statement matches a commit's changes with every watch of their keys and records the
events (`record`): SQLite joins and inserts them without a Python loop per watch, and the
unique index on (watch, kind, subject, status, by) makes a change recorded twice one event.
An event with a callback URL is due (`due`) until sent (`sent`) or given up after the
policy's attempts (`failed` sets the next attempt); `claim` keeps two processes sharing the
file from sending one at the same time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from indexer.store.sqlite_files import open_sqlite_file, write_transaction
from verify.watches.model import Change, Watch, WatchEvent, new_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    id           TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    key          TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    callback_url TEXT,
    UNIQUE (key_id, key)
);
CREATE INDEX IF NOT EXISTS watches_key ON watches (key, expires_at);
CREATE TABLE IF NOT EXISTS watch_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL,  -- 64 random bits: no index to keep
    watch_id      TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    key           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    invoice_id    TEXT,
    status        TEXT NOT NULL,
    by_change     TEXT NOT NULL,
    at            REAL NOT NULL,
    details_json  TEXT NOT NULL,
    callback_url  TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       REAL,
    claimed_until REAL,
    sent_at       REAL,
    error         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS watch_events_once
    ON watch_events (watch_id, kind, subject, status, by_change);
CREATE INDEX IF NOT EXISTS watch_events_feed ON watch_events (key_id, key, seq);
CREATE INDEX IF NOT EXISTS watch_events_due ON watch_events (next_at)
    WHERE callback_url IS NOT NULL AND sent_at IS NULL;
"""

#: Each change's row of the matching statement: [key, kind, subject, invoice id, status,
#: by, details]; every watch of `key` in force gets the event, once. The changes are read
#: out of their JSON once (`ch`), not once per watch matched.
_RECORD = """
WITH ch AS MATERIALIZED (
    SELECT json_extract(value, '$[0]') AS key, json_extract(value, '$[1]') AS kind,
        json_extract(value, '$[2]') AS subject, json_extract(value, '$[3]') AS invoice_id,
        json_extract(value, '$[4]') AS status, json_extract(value, '$[5]') AS by_change,
        json_extract(value, '$[6]') AS details_json, json_extract(value, '$[7]') AS at
        FROM json_each(?1))
INSERT OR IGNORE INTO watch_events (id, watch_id, key_id, key, kind, subject, invoice_id,
    status, by_change, at, details_json, callback_url)
SELECT 'wev_' || lower(hex(randomblob(8))), w.id, w.key_id, w.key, ch.kind, ch.subject,
    ch.invoice_id, ch.status, ch.by_change, ?2, ch.details_json, w.callback_url
FROM ch CROSS JOIN watches AS w ON w.key = ch.key
WHERE w.expires_at > ?2 AND (ch.at IS NULL OR w.created_at <= ch.at)
"""
#: Whether any watch in force is of one of the keys (most commits change nothing watched).
_ANY = ("SELECT EXISTS (SELECT 1 FROM json_each(?1) AS c CROSS JOIN watches AS w "
        "ON w.key = c.value WHERE w.expires_at > ?2)")
_WATCH = "SELECT id, key_id, key, created_at, expires_at, callback_url FROM watches"
_WATCHES_OF = _WATCH + " WHERE key_id = ? AND key IN (SELECT value FROM json_each(?))"  # noqa: S608
_EVENT = ("SELECT seq, id, watch_id, key, kind, invoice_id, status, at, details_json "
          "FROM watch_events")


class WatchLimitReached(Exception):
    def __init__(self, limit: int, active: int, asked: int) -> None:
        super().__init__(f"{active} watches in force and {asked} more asked; "
                         f"a key may hold {limit}")
        self.limit, self.active, self.asked = limit, active, asked


def _watch(row: Any) -> Watch:
    return Watch(row[0], row[1], row[2], row[3], row[4], row[5])


def _event(row: Any) -> WatchEvent:
    return WatchEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                      orjson.loads(row[8]))


class SqliteWatchStore:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    async def create(self, key_id: str, keys: Sequence[str], *, now: float, expires_at: float,
                     callback_url: str | None, limit: int) -> list[Watch]:
        """Watches of `keys` for `key_id` until `expires_at`: a key it already watches is
        renewed (same id, the new expiry and callback). Raises `WatchLimitReached` (nothing
        made) when the key would hold more than `limit` watches in force."""
        wanted = list(dict.fromkeys(keys))
        async with self._lock, write_transaction(self._conn):
            await self._conn.execute(
                "DELETE FROM watches WHERE key_id = ? AND expires_at <= ?", (key_id, now))
            rows = await self._conn.execute_fetchall(
                "SELECT key FROM watches WHERE key_id = ?", (key_id,))
            held = {str(r[0]) for r in rows}
            new = [k for k in wanted if k not in held]
            if len(held) + len(new) > limit:
                raise WatchLimitReached(limit, len(held), len(new))
            await self._conn.executemany(
                "INSERT INTO watches (id, key_id, key, created_at, expires_at, callback_url) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, key) DO UPDATE SET "
                "expires_at = excluded.expires_at, callback_url = excluded.callback_url",
                [(new_id("wat"), key_id, k, now, expires_at, callback_url) for k in wanted])
            found = await self._conn.execute_fetchall(
                _WATCHES_OF, (key_id, json.dumps(wanted)))
        by_key = {w.key: w for w in map(_watch, found)}
        return [by_key[k] for k in keys]  # one per key asked, in order

    async def count(self, key_id: str, *, now: float) -> int:
        """The key's watches in force."""
        rows = list(await self._conn.execute_fetchall(
            "SELECT COUNT(*) FROM watches WHERE key_id = ? AND expires_at > ?", (key_id, now)))
        return int(rows[0][0])

    async def watches(self, key_id: str, *, now: float) -> list[Watch]:
        rows = await self._conn.execute_fetchall(
            _WATCH + " WHERE key_id = ? AND expires_at > ? ORDER BY created_at, id",
            (key_id, now))
        return [_watch(r) for r in rows]

    async def delete(self, key_id: str, watch_id: str) -> bool:
        """Only the key's own watch (another key's answers as one that does not exist)."""
        async with self._lock:
            cursor = await self._conn.execute(
                "DELETE FROM watches WHERE id = ? AND key_id = ?", (watch_id, key_id))
        return cursor.rowcount > 0

    async def record(self, changes: Collection[Change], *, now: float) -> int:
        """The events of `changes` for every watch in force of their keys; how many were new
        (a change recorded before is not recorded again)."""
        keys = sorted({key for c in changes for key in c.keys})
        if not keys:
            return 0
        found = list(await self._conn.execute_fetchall(_ANY, (json.dumps(keys), now)))
        if not found[0][0]:
            return 0
        rows = [[key, c.kind, c.invoice_id or c.keys[0], c.invoice_id, c.status, c.by,
                 orjson.dumps(c.details).decode(), c.at] for c in changes for key in c.keys]
        async with self._lock, write_transaction(self._conn):
            before = self._conn.total_changes
            await self._conn.execute(_RECORD, (orjson.dumps(rows).decode(), now))
            return self._conn.total_changes - before

    async def events(self, key_id: str, *, after: int = 0, key: str | None = None,
                     limit: int = 100) -> list[WatchEvent]:
        """The key's events after cursor `after`, oldest first (of one watched key if
        given), each with its callback's delivery when it has one."""
        rows = await self._conn.execute_fetchall(
            "SELECT seq, id, watch_id, key, kind, invoice_id, status, at, details_json, "
            "callback_url IS NOT NULL, attempts, sent_at, error FROM watch_events "
            "WHERE key_id = ?1 AND seq > ?2 AND (?3 IS NULL OR key = ?3) "
            "ORDER BY seq LIMIT ?4", (key_id, after, key, limit))
        return [replace(_event(r[:9]), delivery=(int(r[10]), r[11], r[12]) if r[9] else None)
                for r in rows]

    async def watched_keys(self, *, now: float) -> list[str]:
        """Every key some watch in force holds (the sweep reads their invoices)."""
        rows = await self._conn.execute_fetchall(
            "SELECT DISTINCT key FROM watches WHERE expires_at > ? ORDER BY key", (now,))
        return [str(r[0]) for r in rows]

    async def watch_of(self, key_id: str, key: str, *, now: float) -> Watch | None:
        """The key's watch of `key` in force, if any (the desk's verdict says so)."""
        rows = list(await self._conn.execute_fetchall(
            _WATCH + " WHERE key_id = ? AND key = ? AND expires_at > ?", (key_id, key, now)))
        return _watch(rows[0]) if rows else None

    async def latest(self, key_id: str, *, key: str | None = None, before: int | None = None,
                     limit: int = 50) -> list[WatchEvent]:
        """The key's events newest first (of one watched key if given), before cursor
        `before`: the pages' list, and the last change of one invoice on the desk."""
        rows = await self._conn.execute_fetchall(
            _EVENT + " WHERE key_id = ?1 AND (?2 IS NULL OR seq < ?2) "
            "AND (?3 IS NULL OR key = ?3) ORDER BY seq DESC LIMIT ?4",
            (key_id, before, key, limit))
        return [_event(r) for r in rows]

    async def due(self, *, now: float, max_attempts: int,
                  limit: int = 100) -> list[tuple[WatchEvent, str, int]]:
        """Events whose callback is due now: (event, callback URL, attempts so far)."""
        rows = await self._conn.execute_fetchall(
            "SELECT seq, id, watch_id, key, kind, invoice_id, status, at, details_json, "
            "callback_url, attempts FROM watch_events WHERE callback_url IS NOT NULL "
            "AND sent_at IS NULL AND attempts < ?1 AND (next_at IS NULL OR next_at <= ?2) "
            "AND (claimed_until IS NULL OR claimed_until < ?2) ORDER BY seq LIMIT ?3",
            (max_attempts, now, limit))
        return [(_event(r[:9]), str(r[9]), int(r[10])) for r in rows]

    async def claim(self, event: WatchEvent, *, now: float, until: float) -> bool:
        """Whether this process sends the event's callback now (no other one is)."""
        async with self._lock:
            cursor = await self._conn.execute(
                "UPDATE watch_events SET claimed_until = ? WHERE seq = ? AND sent_at IS NULL "
                "AND (claimed_until IS NULL OR claimed_until < ?)", (until, event.seq, now))
        return cursor.rowcount > 0

    async def sent(self, event: WatchEvent, *, now: float) -> None:
        async with self._lock:
            await self._conn.execute(
                "UPDATE watch_events SET sent_at = ?, attempts = attempts + 1, error = NULL, "
                "claimed_until = NULL WHERE seq = ?", (now, event.seq))

    async def failed(self, event: WatchEvent, error: str, *, next_at: float) -> None:
        async with self._lock:
            await self._conn.execute(
                "UPDATE watch_events SET attempts = attempts + 1, error = ?, next_at = ?, "
                "claimed_until = NULL WHERE seq = ?", (error, next_at, event.seq))

    async def delivery(self, event: WatchEvent) -> tuple[int, float | None, str | None]:
        """An event's callback: attempts, when it was sent, the last error."""
        rows = list(await self._conn.execute_fetchall(
            "SELECT attempts, sent_at, error FROM watch_events WHERE seq = ?", (event.seq,)))
        return int(rows[0][0]), rows[0][1], rows[0][2]

    async def prune(self, *, now: float, keep_events_s: float) -> int:
        """Expired watches and events older than `keep_events_s` go."""
        async with self._lock, write_transaction(self._conn):
            before = self._conn.total_changes
            await self._conn.execute("DELETE FROM watches WHERE expires_at <= ?", (now,))
            await self._conn.execute("DELETE FROM watch_events WHERE at < ?",
                                     (now - keep_events_s,))
            return self._conn.total_changes - before


@asynccontextmanager
async def open_watch_store(path: Path) -> AsyncIterator[SqliteWatchStore]:
    """`synchronous=FULL`: a watch made, and the events recorded, survive a power cut."""
    async with open_sqlite_file(path, _SCHEMA) as conn:
        # A fan-out of many watches writes as many rows into four indexes: kept in memory
        # (64 MiB at most) rather than spilled page by page.
        await conn.execute("PRAGMA cache_size = -65536")
        yield SqliteWatchStore(conn)
