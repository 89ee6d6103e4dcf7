"""Writing the gap ledger's records (`fallback.gaps.SqliteGapLedger.record_id`) in batches.

During an outage every miss records a gap, and the misses are everyone asking again about
what they could not get; one fsync per miss, one at a time, would cap the whole service at
the disk's sync rate. So the records queued while a batch is being written go together in
the next one (group commit): one transaction, one fsync, a fixed number of statements
whatever its size, and the asks of one lookup key in it are one write (`coalesced`: count
and requesters summed). A caller gets its gap's id once the transaction holding its ask is
committed, so an id that was handed out is on disk.

A repeated ask answered at once from the ledger's memory of a gap already on disk
(`fallback.gaps.SqliteGapLedger.record_id`) comes here as a *late* ask: it names the gap it
was answered with, and is counted in that gap (its count, last seen, its requester's row)
only while the gap is still open: never a gap opened for it, since nobody holds the id such
a gap would have. A late ask of a gap resolved meanwhile is dropped.

The batch runs on a thread of its own with a connection of its own to `gaps.sqlite3`
(WAL, `synchronous=FULL`, as the ledger's): one hand-off between the event loop and that
thread per batch, where each statement through `aiosqlite` is one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

if TYPE_CHECKING:
    from fallback.gaps import GapRequest

#: One queued record: the ask, when it was asked, and the caller waiting for the gap id.
Pending = tuple["GapRequest", datetime, "asyncio.Future[str]"]
#: One late ask (answered from memory): its lookup key, the gap id it was answered with, its
#: requester, when.
Late = tuple[str, str, str, float]
K = TypeVar("K", str, tuple[str, str])

# Each statement takes the whole batch as one JSON array parameter (one row per element):
# one call into SQLite per statement whatever the batch's size, so the writer's thread
# gives the GIL back and waits for it again a fixed number of times per batch (with one
# call per row, each such wait for the busy event loop's thread lengthened the batch, and
# with it every miss waiting in it). `WHERE true` keeps `ON CONFLICT` from being read as
# part of the SELECT's join.
_UPSERT = (  # one open gap per key: a key with one adds its asks to it, else one opens
    "INSERT INTO gaps (id, lookup_key, scheme, key_json, seller_tax_id, issued_on, reason, "
    "outage_id, status, first_seen, last_seen, count) SELECT "
    "json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), "
    "json_extract(value, '$[6]'), json_extract(value, '$[7]'), 'open', "
    "json_extract(value, '$[8]'), json_extract(value, '$[9]'), json_extract(value, '$[10]') "
    "FROM json_each(?) WHERE true "
    "ON CONFLICT (lookup_key) WHERE status = 'open' DO UPDATE SET "
    "count = count + excluded.count, last_seen = excluded.last_seen, "
    "issued_on = COALESCE(issued_on, excluded.issued_on)")
_ADD_REQUESTER = (
    "INSERT INTO gap_requesters (gap_id, key_id, callback_url, first_seen, last_seen, count) "
    "SELECT g.id, json_extract(r.value, '$[1]'), json_extract(r.value, '$[2]'), "
    "json_extract(r.value, '$[3]'), json_extract(r.value, '$[4]'), "
    "json_extract(r.value, '$[5]') "
    "FROM json_each(?) AS r JOIN gaps AS g "
    "ON g.lookup_key = json_extract(r.value, '$[0]') AND g.status = 'open' WHERE true "
    "ON CONFLICT (gap_id, key_id) DO UPDATE SET count = count + excluded.count, "
    "last_seen = excluded.last_seen, "
    "callback_url = COALESCE(excluded.callback_url, callback_url)")
# Late asks, by gap id: counted only in a gap still open (`RETURNING`: the ones that were).
_COUNT_LATE = (
    "UPDATE gaps SET count = count + json_extract(j.value, '$[1]'), "
    "last_seen = max(last_seen, json_extract(j.value, '$[2]')) FROM json_each(?) AS j "
    "WHERE gaps.id = json_extract(j.value, '$[0]') AND gaps.status = 'open' RETURNING id")
_COUNT_LATE_REQUESTERS = (
    "UPDATE gap_requesters SET count = count + json_extract(j.value, '$[2]'), "
    "last_seen = max(last_seen, json_extract(j.value, '$[3]')) FROM json_each(?) AS j "
    "WHERE gap_requesters.gap_id = json_extract(j.value, '$[0]') "
    "AND gap_requesters.key_id = json_extract(j.value, '$[1]') "
    "AND gap_requesters.gap_id IN (SELECT value FROM json_each(?))")
_OPEN_IDS = ("SELECT json_group_object(lookup_key, id) FROM gaps WHERE status = 'open' AND "
             "lookup_key IN (SELECT value FROM json_each(?))")


def new_gap_id(now: datetime) -> str:
    """Time-ordered and unique across processes: 12 hex digits of milliseconds, 8 random."""
    return f"gap_{int(now.timestamp() * 1000):012x}{secrets.token_hex(4)}"


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(slots=True)
class _Asked:
    """One requester's asks of one key within a batch: summed into one row."""

    callback_url: str | None
    first_seen: float
    last_seen: float
    count: int = 1


@dataclass(slots=True)
class KeyAsks:
    """Every ask of one lookup key within a batch: one ledger write for all of them, in the
    order they came (the first names the gap, the latest callback URL of a requester wins,
    the first `issued_on` given is kept, as separate records would leave it)."""

    first: GapRequest
    first_seen: float
    last_seen: float
    issued_on: str | None
    requesters: dict[str, _Asked]
    waiting: list[asyncio.Future[str]]
    count: int = 1

    @classmethod
    def of(cls, request: GapRequest, ts: float, future: asyncio.Future[str]) -> KeyAsks:
        return cls(request, ts, ts, _day(request.issued_on),
                   {request.requester: _Asked(request.callback_url, ts, ts)}, [future])

    def add(self, request: GapRequest, ts: float, future: asyncio.Future[str]) -> None:
        self.count += 1
        self.last_seen = ts
        self.issued_on = self.issued_on or _day(request.issued_on)
        asked = self.requesters.get(request.requester)
        if asked is None:
            self.requesters[request.requester] = _Asked(request.callback_url, ts, ts)
        else:
            asked.count += 1
            asked.last_seen = ts
            asked.callback_url = request.callback_url or asked.callback_url
        self.waiting.append(future)

    def gap_row(self, lookup_key: str) -> tuple[Any, ...]:
        first = self.first
        return (new_gap_id(datetime.fromtimestamp(self.first_seen, UTC)), lookup_key,
                first.scheme, json.dumps(first.key, ensure_ascii=False), first.seller_tax_id,
                self.issued_on, str(first.reason), first.outage_id, self.first_seen,
                self.last_seen, self.count)

    def requester_rows(self, lookup_key: str) -> list[tuple[Any, ...]]:
        return [(lookup_key, key_id, asked.callback_url, asked.first_seen, asked.last_seen,
                 asked.count) for key_id, asked in self.requesters.items()]


def _tally(table: dict[K, list[float]], key: K, ts: float) -> None:
    seen = table.get(key)
    if seen is None:
        table[key] = [1, ts]
    else:
        seen[0] += 1
        seen[1] = max(seen[1], ts)


@dataclass(slots=True)
class LateAsks:
    """Repeated asks answered from memory, by the gap they were answered with: per gap and
    per (gap, requester), how many and the latest time."""

    gaps: dict[str, list[float]]
    requesters: dict[tuple[str, str], list[float]]
    lookup_keys: dict[str, str]  # gap id -> its key

    @classmethod
    def of(cls, late: Collection[Late]) -> LateAsks:
        asks = cls({}, {}, {})
        for lookup_key, gap_id, key_id, ts in late:
            asks.lookup_keys[gap_id] = lookup_key
            _tally(asks.gaps, gap_id, ts)
            _tally(asks.requesters, (gap_id, key_id), ts)
        return asks

    def rows(self) -> tuple[bytes, bytes]:
        return (orjson.dumps([[g, int(n), ts] for g, (n, ts) in self.gaps.items()]),
                orjson.dumps([[g, k, int(n), ts]
                              for (g, k), (n, ts) in self.requesters.items()]))


def coalesced(batch: Collection[Pending]) -> dict[str, KeyAsks]:
    """A batch of records by lookup key, in the order the keys first came."""
    by_key: dict[str, KeyAsks] = {}
    for request, now, future in batch:
        asks = by_key.get(request.lookup_key)
        if asks is None:
            by_key[request.lookup_key] = KeyAsks.of(request, now.timestamp(), future)
        else:
            asks.add(request, now.timestamp(), future)
    return by_key


class GapWriter:
    """The ledger file's batch writer: one thread, one connection, opened at the first
    batch (the ledger's own connection has created and migrated the file by then)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="gap-ledger-writer")
        self._conn: sqlite3.Connection | None = None

    async def write(self, by_key: dict[str, KeyAsks],
                    late: LateAsks | None = None) -> tuple[dict[str, str], set[str], int]:
        """Each key's gap opened or counted, each requester's row added or counted, the late
        asks counted in their gaps still open, in one committed transaction; the open gap's
        id of each key, the gaps of the late asks that were still open, and the file's
        `PRAGMA data_version` on this connection as the batch found it (read under its write
        lock): it changes only when another connection (another process, the ledger's own
        for resolutions) committed since the previous batch."""
        gaps = orjson.dumps([asks.gap_row(key) for key, asks in by_key.items()])
        requesters = orjson.dumps([row for key, asks in by_key.items()
                                   for row in asks.requester_rows(key)])
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write, gaps, requesters, orjson.dumps(list(by_key)),
            late.rows() if late is not None and late.gaps else None)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            conn.execute("PRAGMA synchronous = FULL")
            self._conn = conn
        return self._conn

    def _write(self, gaps: bytes, requesters: bytes, keys: bytes,
               late: tuple[bytes, bytes] | None) -> tuple[dict[str, str], set[str], int]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        still_open: set[str] = set()
        try:
            # Inside the write lock: exactly the file this batch reads and writes (read after
            # the commit, it could include another connection's commit made after it).
            (version,) = conn.execute("PRAGMA data_version").fetchone()
            if late is not None:  # first: a key's new gap opened below is not theirs
                still_open = {row[0] for row in conn.execute(
                    _COUNT_LATE, (late[0].decode(),)).fetchall()}
                conn.execute(_COUNT_LATE_REQUESTERS,
                             (late[1].decode(), orjson.dumps(sorted(still_open)).decode()))
            ids = "{}"
            if keys != b"[]":
                conn.execute(_UPSERT, (gaps.decode(),))
                conn.execute(_ADD_REQUESTER, (requesters.decode(),))
                (ids,) = conn.execute(_OPEN_IDS, (keys.decode(),)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        found: dict[str, str] = json.loads(ids)
        return found, still_open, int(version)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        """Close the connection on its thread and stop the thread (after the last batch)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
