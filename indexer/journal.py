"""The durable intake journal: every package the service acknowledges is here first.

A SQLite file of the data directory (`journal.sqlite3`), WAL with `synchronous=FULL`: an
append is on disk (fsync'd) before it returns, and only then is the package acknowledged.
Each service process keeps its own journal; its reconciler drains it into the primary index.

An entry holds the request body exactly as received (JSON or VN XML) with its package id,
digest and receipt time, and a state:

- `pending`: not yet applied to the primary. Either the primary is applying it right now
  (the normal path: append, apply, mark applied), or the primary was unavailable and the
  caller got a *queued* notice (HTTP 202); the reconciler applies it later, in journal order,
  re-running every rule against the primary, and the final notice replaces the queued one.
- `applied`: the primary holds it; `notice` is the final acceptance notice. Applied entries
  are kept for `prune` (a week by default) so a re-post is still answered from here.
- `quarantined`: applying it failed, for a reason other than the primary being unavailable,
  as many times as allowed (`attempts`, `last_error`). Its `notice` is a final rejection
  (`package.unprocessable`); it blocks nothing, is never pruned, and an operator may `retry`
  it (back to pending, at the end of nothing: its own sequence number) or `drop` it
  (docs/journal.md).

While an entry is pending, the invoices it would create or change (as far as the service
could tell without the primary) are kept as *pending documents*, so lookups answer them from
here instead of opening gaps. They are held in memory too (one dict lookup per request) and
reloaded from the file when another process changed it (`refresh`). Once the entry is
applied they are no longer answered, and their rows leave the file with the entry (`prune`).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from indexer.codec import json_text
from indexer.store.sqlite_files import open_sqlite_file, run_script, write_transaction
from indexer.submission import BodyFormat, Submission

#: The entries table; `{name}`: `IF NOT EXISTS entries`, or the table a migration builds.
_ENTRIES_TABLE = """
CREATE TABLE {name} (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id   TEXT NOT NULL UNIQUE,
    sender       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    format       TEXT NOT NULL,
    body         BLOB NOT NULL,
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'quarantined')),
    notice       TEXT,
    applied_at   TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    quarantined_at TEXT
);
"""
_SCHEMA = _ENTRIES_TABLE.format(name="IF NOT EXISTS entries") + """
CREATE TABLE IF NOT EXISTS pending_docs (
    seq            INTEGER NOT NULL REFERENCES entries (seq),
    doc_id         TEXT NOT NULL,
    authority_code TEXT,
    doc            TEXT NOT NULL,
    PRIMARY KEY (seq, doc_id)
) WITHOUT ROWID;
"""
#: The indexes, created once a version-0 file has its table rebuilt.
_INDEXES = """
CREATE INDEX IF NOT EXISTS entries_pending ON entries (seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS entries_applied ON entries (applied_at) WHERE state = 'applied';
CREATE INDEX IF NOT EXISTS entries_quarantined ON entries (seq) WHERE state = 'quarantined';
"""
#: `PRAGMA user_version` of the current layout. 0: entries' state allowed pending and
#: applied only, and `attempts` counted every failure (transient ones too).
JOURNAL_VERSION = 1
_V0_COPY = """
INSERT INTO entries_v1 (seq, package_id, sender, digest, format, body, received_at, state,
                        notice, applied_at, attempts, last_error)
    SELECT seq, package_id, sender, digest, format, body, received_at, state, notice,
           applied_at, 0, last_error FROM entries;
DROP TABLE entries;
ALTER TABLE entries_v1 RENAME TO entries;
"""
_V0_REBUILD = _ENTRIES_TABLE.format(name="entries_v1") + _V0_COPY

_ENTRY_COLUMNS = ("seq, package_id, sender, digest, format, body, received_at, state, notice, "
                  "applied_at, attempts, last_error, quarantined_at")
_SELECT = f"SELECT {_ENTRY_COLUMNS} FROM entries"  # noqa: S608 (constants)
#: The pending page after ?1: at most ?2 entries, and no entry once the bodies before it
#: reach ?3 bytes (the first is always taken). `length` of a blob reads no blob pages.
_PENDING_PAGE = (
    f"{_SELECT} WHERE state = 'pending' AND seq > ?1 AND seq <= ("  # noqa: S608 (constants)
    "SELECT MAX(seq) FROM (SELECT seq, SUM(length(body)) OVER (ORDER BY seq)"
    " - length(body) AS before FROM entries WHERE state = 'pending' AND seq > ?1"
    " ORDER BY seq LIMIT ?2) WHERE before < ?3) ORDER BY seq")

#: The pending documents `_load` reads, driven by the pending entries (their partial index):
#: the documents of applied entries stay in the file until `prune`, and must not be scanned
#: on every load (at start, and on each `refresh` after another process wrote).
LOAD_PENDING_DOCS = ("SELECT p.seq, e.received_at, p.doc FROM entries e CROSS JOIN pending_docs p"
                     " ON p.seq = e.seq WHERE e.state = 'pending' ORDER BY e.seq")

Doc = dict[str, Any]
log = logging.getLogger("indexer.journal")


class JournalUnavailableError(Exception):
    """The journal could not make an entry durable (disk full, file unwritable)."""


class EntryState(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    QUARANTINED = "quarantined"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    package_id: str
    sender: str
    digest: str
    format: BodyFormat
    body: bytes
    received_at: datetime
    state: EntryState
    notice: dict[str, Any] | None
    applied_at: datetime | None
    #: Failed applies that count towards quarantine (not the primary being unavailable).
    attempts: int
    last_error: str | None
    quarantined_at: datetime | None = None
    #: Why a column of its row could not be read (None: it could); such an entry is never
    #: applied (`JournaledIntake` quarantines it).
    unreadable: str | None = None

    def summary(self) -> dict[str, Any]:
        """What an operator sees of an entry (`GET /api/v1/journal`): no body."""
        return {"seq": self.seq, "package_id": self.package_id, "sender": self.sender,
                "format": str(self.format), "bytes": len(self.body),
                "received_at": _stamp(self.received_at), "state": str(self.state),
                "attempts": self.attempts, "last_error": self.last_error,
                "quarantined_at": _stamp(self.quarantined_at) if self.quarantined_at else None,
                "result": (self.notice or {}).get("result"), "unreadable": self.unreadable}


_T = TypeVar("_T")
#: What an unreadable column reads as (`JournalEntry.unreadable` says why).
_EPOCH = datetime.fromtimestamp(0, UTC)


def _entry(row: Any) -> JournalEntry:
    """The entry of a row; never raises for a column this release cannot read (a format it
    does not know, a time that is not ISO 8601, a notice that is not JSON, a text body): the
    entry says so in `unreadable`, and applying it fails, so it is quarantined like any
    entry that cannot be applied instead of failing every read of the pending page."""
    try:  # every row but a broken one: no per-column guard on the drain's hot path
        return JournalEntry(
            seq=row[0], package_id=row[1], sender=row[2], digest=row[3],
            format=BodyFormat(row[4]), body=bytes(row[5]),
            received_at=datetime.fromisoformat(row[6]), state=EntryState(row[7]),
            notice=orjson.loads(row[8]) if row[8] else None,
            applied_at=datetime.fromisoformat(row[9]) if row[9] else None,
            attempts=row[10], last_error=row[11],
            quarantined_at=datetime.fromisoformat(row[12]) if row[12] else None)
    except (ValueError, TypeError):
        return _unreadable_entry(row)


def _unreadable_entry(row: Any) -> JournalEntry:
    """`_entry` of a row with a column it cannot read: each column read on its own, the
    unreadable ones replaced by a default and named in `unreadable`."""
    problems: list[str] = []

    def read(parse: Callable[[Any], _T], value: Any, default: _T, column: str) -> _T:
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:  # orjson's decode error is a ValueError
            problems.append(f"{column}: {type(exc).__name__}: {exc}"[:300])
            return default

    def optional_time(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return JournalEntry(
        seq=row[0], package_id=str(row[1]), sender=str(row[2]), digest=str(row[3]),
        format=read(BodyFormat, row[4], BodyFormat.JSON, "format"),
        body=read(bytes, row[5], b"", "body"),
        received_at=read(datetime.fromisoformat, row[6], _EPOCH, "received_at"),
        state=EntryState(row[7]),
        notice=read(lambda v: orjson.loads(v) if v else None, row[8], None, "notice"),
        applied_at=read(optional_time, row[9], None, "applied_at"),
        attempts=int(row[10]), last_error=row[11],
        quarantined_at=read(optional_time, row[12], None, "quarantined_at"),
        unreadable="; ".join(problems) or None)


@dataclass(frozen=True, slots=True)
class PendingDoc:
    seq: int
    received_at: datetime
    doc: Doc


class IntakeJournal:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._docs: dict[str, PendingDoc] = {}
        self._codes: dict[str, str] = {}
        self._by_seq: dict[int, list[str]] = {}
        self._pending = 0
        self._data_version: int | None = None

    # -- the request path -------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return self._pending

    def pending_doc(self, doc_id: str) -> PendingDoc | None:
        """The newest pending state of an invoice, if a pending entry touches it."""
        return self._docs.get(doc_id) if self._docs else None

    def pending_doc_by_code(self, code: str) -> PendingDoc | None:
        doc_id = self._codes.get(code) if self._codes else None
        return None if doc_id is None else self._docs.get(doc_id)

    # -- reads ------------------------------------------------------------------------

    # Every read takes the lock the writes hold across their transactions: the connection is
    # shared, so a read between a write's BEGIN and its COMMIT would see rows that a
    # ROLLBACK then removes (an entry never acknowledged, applied or answered as journaled).

    async def get(self, package_id: str) -> JournalEntry | None:
        async with self._lock:
            rows = list(await self._conn.execute_fetchall(_SELECT + " WHERE package_id = ?",
                                                          (package_id,)))
        return _entry(rows[0]) if rows else None

    async def pending(self, *, after: int = 0, limit: int = 100,
                      max_bytes: int | None = None) -> list[JournalEntry]:
        """Pending entries in journal order, the page after sequence number `after`: at
        most `limit` entries and, with `max_bytes`, only as many as keep the bodies before
        the last one under that many bytes (a page holds at least one entry, whatever its
        size): what bounds a reconciler batch in memory when packages are large."""
        async with self._lock:
            if max_bytes is None:
                rows = await self._conn.execute_fetchall(
                    _SELECT + " WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
                    (after, limit))
            else:
                rows = await self._conn.execute_fetchall(_PENDING_PAGE,
                                                         (after, limit, max_bytes))
        return [_entry(r) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT state, COUNT(*) FROM entries GROUP BY state")
        found = {str(state): int(n) for state, n in rows}
        return {str(s): found.get(str(s), 0) for s in EntryState}

    async def pending_doc_ids(self, seq: int) -> list[str]:
        return await self.pending_doc_ids_many([seq])

    # -- writes -----------------------------------------------------------------------

    async def append(self, submission: Submission, received_at: datetime, *,
                     notice: dict[str, Any] | None = None,
                     pending_docs: Iterable[Doc] = ()) -> int:
        """Durable (fsync'd) before it returns; the entry's sequence number. Raises
        `JournalUnavailableError` when the file cannot take it, and `sqlite3.IntegrityError`
        if the package id is already journaled (callers look it up first, under a lock)."""
        package = submission.package
        docs = list(pending_docs)
        async with self._lock:
            try:
                async with self._transaction():
                    cursor = await self._conn.execute(
                        "INSERT INTO entries (package_id, sender, digest, format, body, "
                        "received_at, state, notice) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                        (package.package_id, package.sender, package.digest,
                         str(submission.format), submission.body, _stamp(received_at),
                         json_text(notice) if notice else None))
                    seq = cursor.lastrowid
                    assert seq is not None
                    await self._insert_docs(seq, docs)
            except sqlite3.IntegrityError:
                raise
            except (sqlite3.Error, OSError) as exc:
                raise JournalUnavailableError(f"intake journal: {exc}") from exc
            self._pending += 1
            for doc in docs:
                self._remember(PendingDoc(seq, received_at, doc))
        return seq

    async def mark_applied(self, seq: int, notice: dict[str, Any], at: datetime) -> None:
        """The primary holds the entry; `notice` is final. Its pending documents stop being
        answered (memory and `_load` hold only those of pending entries); their rows stay in
        the file until `prune` takes the entry, which keeps a drain's commits to one update
        per entry (deleting them there cost the drain about 5%). Not worth an fsync of its
        own: if a crash loses this, the entry is applied again, and applying is idempotent
        (the primary answers the package id with its notice)."""
        await self.mark_applied_many([(seq, notice)], at)

    async def mark_applied_many(self, notices: Sequence[tuple[int, dict[str, Any]]],
                                at: datetime) -> None:
        """`mark_applied` for a batch of entries, in one transaction."""
        if not notices:
            return
        async with self._lock:
            async with self._transaction():
                seqs = json.dumps([seq for seq, _ in notices])
                applied = [int(r[0]) for r in await self._conn.execute_fetchall(
                    "SELECT seq FROM entries WHERE state = 'pending' AND seq IN "
                    "(SELECT value FROM json_each(?))", (seqs,))]
                stamp = _stamp(at)
                await self._conn.executemany(
                    "UPDATE entries SET state = 'applied', notice = ?, applied_at = ?, "
                    "last_error = NULL WHERE seq = ? AND state = 'pending'",
                    [(json_text(notice), stamp, seq)
                     for seq, notice in notices])
            for seq in applied:
                self._forget(seq)

    async def pending_doc_ids_many(self, seqs: Sequence[int]) -> list[str]:
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT DISTINCT doc_id FROM pending_docs WHERE seq IN "
                "(SELECT value FROM json_each(?)) ORDER BY doc_id", (json.dumps(list(seqs)),))
        return [str(r[0]) for r in rows]

    async def discard(self, seq: int) -> None:
        """Remove a pending entry the primary refused as a whole (e.g. an id conflict): it
        was never acknowledged."""
        async with self._lock:
            async with self._transaction():
                await self._conn.execute("DELETE FROM pending_docs WHERE seq = ?", (seq,))
                cursor = await self._conn.execute(
                    "DELETE FROM entries WHERE seq = ? AND state = 'pending'", (seq,))
            if cursor.rowcount:
                self._forget(seq)

    async def set_provisional(self, seq: int, notice: dict[str, Any],
                              pending_docs: Iterable[Doc], received_at: datetime) -> bool:
        """A pending entry the primary failed to take after all: keep the queued notice and
        the pending documents with it (durable, like `append`). False, and nothing written,
        when the entry is no longer pending: another process's reconciler applied it
        meanwhile, and its final notice stands."""
        docs = list(pending_docs)
        async with self._lock:
            async with self._transaction():
                cursor = await self._conn.execute(
                    "UPDATE entries SET notice = ? WHERE seq = ? AND state = 'pending'",
                    (json_text(notice), seq))
                if not cursor.rowcount:
                    return False
                await self._insert_docs(seq, docs)
            for doc in docs:
                self._remember(PendingDoc(seq, received_at, doc))
        return True

    async def note_failure(self, seq: int, error: str, *, counts: bool = True) -> int:
        """Record a failed apply of a pending entry; its attempts so far. `counts`: False for
        the primary being unavailable, which says nothing about the entry (only the error
        is kept), True for anything else (towards quarantine)."""
        async with self._lock:  # not inside another write's transaction (its ROLLBACK)
            await self._conn.execute(
                "UPDATE entries SET attempts = attempts + ?, last_error = ? WHERE seq = ?",
                (1 if counts else 0, error[:2000], seq))
            rows = list(await self._conn.execute_fetchall(
                "SELECT attempts FROM entries WHERE seq = ?", (seq,)))
        return int(rows[0][0]) if rows else 0

    async def quarantine(self, seq: int, notice: dict[str, Any], at: datetime) -> bool:
        """Set a pending entry aside: `notice` (a final rejection) is what a re-post is
        answered; it blocks nothing and stays until an operator retries or drops it. False
        when the entry was no longer pending (another process settled it first)."""
        async with self._lock:
            async with self._transaction():
                cursor = await self._conn.execute(
                    "UPDATE entries SET state = 'quarantined', notice = ?, quarantined_at = ?"
                    " WHERE seq = ? AND state = 'pending'", (json_text(notice), _stamp(at), seq))
            if not cursor.rowcount:
                return False
            self._forget(seq)
        return True

    async def retry(self, seq: int) -> bool:
        """A quarantined entry back to pending, its attempts reset (an operator fixed the
        cause): applied by the next drain, its queued invoices answered again meanwhile.
        False when no quarantined entry has this sequence number."""
        async with self._lock:
            async with self._transaction():
                cursor = await self._conn.execute(
                    "UPDATE entries SET state = 'pending', notice = NULL, attempts = 0,"
                    " quarantined_at = NULL WHERE seq = ? AND state = 'quarantined'", (seq,))
            if cursor.rowcount:
                await self._load()
        return bool(cursor.rowcount)

    async def drop(self, seq: int) -> bool:
        """Delete a quarantined entry and its pending documents (an operator gave up on it;
        its package id may be posted again). False when no quarantined entry has it."""
        async with self._lock, self._transaction():
            await self._conn.execute(
                "DELETE FROM pending_docs WHERE seq IN (SELECT seq FROM entries"
                " WHERE seq = ? AND state = 'quarantined')", (seq,))
            cursor = await self._conn.execute(
                "DELETE FROM entries WHERE seq = ? AND state = 'quarantined'", (seq,))
        return bool(cursor.rowcount)

    async def entry(self, seq: int) -> JournalEntry | None:
        async with self._lock:
            rows = list(await self._conn.execute_fetchall(_SELECT + " WHERE seq = ?", (seq,)))
        return _entry(rows[0]) if rows else None

    async def entries(self, state: EntryState, *, after: int = 0,
                      limit: int = 100) -> list[JournalEntry]:
        """Entries in one state, in journal order, the page after sequence number `after`."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                _SELECT + " WHERE state = ? AND seq > ? ORDER BY seq LIMIT ?",
                (str(state), after, limit))
        return [_entry(r) for r in rows]

    async def prune(self, applied_before: datetime) -> int:
        """Delete applied entries applied before the given moment, with the pending
        documents they had; how many entries."""
        stamp = _stamp(applied_before)
        async with self._lock, self._transaction():
            await self._conn.execute(
                "DELETE FROM pending_docs WHERE seq IN (SELECT seq FROM entries"
                " WHERE state = 'applied' AND applied_at < ?)", (stamp,))
            cursor = await self._conn.execute(
                "DELETE FROM entries WHERE state = 'applied' AND applied_at < ?", (stamp,))
        return cursor.rowcount

    async def refresh(self) -> bool:
        """Reload the pending documents if another connection changed the file (another
        process drained or appended); True if it reloaded."""
        async with self._lock:
            rows = list(await self._conn.execute_fetchall("PRAGMA data_version"))
            version = int(rows[0][0])
            if version == self._data_version:
                return False
            await self._load()
            self._data_version = version
        return True

    async def _insert_docs(self, seq: int, docs: list[Doc]) -> None:
        await self._conn.executemany(
            "INSERT OR REPLACE INTO pending_docs (seq, doc_id, authority_code, doc) "
            "VALUES (?, ?, ?, ?)",
            [(seq, d["doc_id"], d.get("authority_code"), json.dumps(d, ensure_ascii=False))
             for d in docs])

    def _transaction(self) -> AbstractAsyncContextManager[None]:
        """`write_transaction` on the journal's connection; callers hold `_lock`, so no read
        sees it half-done."""
        return write_transaction(self._conn)

    # -- memory -----------------------------------------------------------------------

    async def _load(self) -> None:
        self._docs, self._codes, self._by_seq = {}, {}, {}
        rows = await self._conn.execute_fetchall(LOAD_PENDING_DOCS)
        for seq, received_at, raw in rows:
            try:
                pending = PendingDoc(seq, datetime.fromisoformat(received_at), orjson.loads(raw))
                self._remember(pending)
            except (ValueError, TypeError, KeyError) as exc:
                # not answered from here (the primary or the replica answer instead); one
                # unreadable row must not keep the journal, and so the service, from opening
                log.warning("unreadable pending document skipped",
                            extra={"seq": seq, "error": repr(exc)})
        count = list(await self._conn.execute_fetchall(
            "SELECT COUNT(*) FROM entries WHERE state = 'pending'"))
        self._pending = int(count[0][0])

    def _remember(self, pending: PendingDoc) -> None:
        doc_id = pending.doc["doc_id"]
        self._by_seq.setdefault(pending.seq, []).append(doc_id)
        current = self._docs.get(doc_id)
        if current is None or current.seq <= pending.seq:
            self._docs[doc_id] = pending
            code = pending.doc.get("authority_code")
            if code:
                self._codes[code] = doc_id

    def _forget(self, seq: int) -> None:
        self._pending = max(0, self._pending - 1)
        for doc_id in self._by_seq.pop(seq, ()):
            current = self._docs.get(doc_id)
            if current is None or current.seq != seq:
                continue  # a later pending entry holds a newer state of it
            del self._docs[doc_id]
            code = current.doc.get("authority_code")
            if code and self._codes.get(code) == doc_id:
                del self._codes[code]


async def _quarantined_state(conn: aiosqlite.Connection) -> None:
    """Step 1 (`migrate`): version 0 -> 1, or a new file created at 1. The entries table is
    rebuilt for the `quarantined` state (a CHECK constraint cannot be altered), its
    AUTOINCREMENT counter kept, and every `attempts` reset: it counted transient failures too."""
    await run_script(conn, _SCHEMA)
    table = list(await conn.execute_fetchall(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'"))
    if "quarantined" not in str(table[0][0]):
        counter = list(await conn.execute_fetchall(
            "SELECT seq FROM sqlite_sequence WHERE name = 'entries'"))
        await run_script(conn, _V0_REBUILD)
        if counter:
            await conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?)"
                               " WHERE name = 'entries'", (int(counter[0][0]),))
    await run_script(conn, _INDEXES)


#: The journal's migration steps; `JOURNAL_VERSION` is their number.
_LAYOUT = (_quarantined_state,)


@asynccontextmanager
async def open_intake_journal(path: Path) -> AsyncIterator[IntakeJournal]:
    async with open_sqlite_file(path, _LAYOUT) as conn:
        journal = IntakeJournal(conn)
        await journal.refresh()
        yield journal
