"""The embedded default store: one SQLite file in WAL mode, parameterised SQL only.

Two connections. Writes, and the bulk reads of intake, go through aiosqlite (a thread of its
own), so a long transaction never holds the event loop. Point lookups by primary key or
unique index (the request path: `get_invoice`, `find_by_authority_code`) use a read-only
`sqlite3` connection directly on the event loop: such a read costs about 12 us, a tenth of
the thread hand-off it would otherwise pay, and in WAL mode a reader never waits for the
writer. `synchronous=FULL` makes a commit durable before `commit_package` returns. A point
read that holds the loop (`SLOW_INLINE_READ_SECONDS`: another process holding the WAL-index
locks) sends point reads to the writer's thread until a health probe is fast again.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sqlite3
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite

from indexer.codec import DOC_FIELDS, invoice_from_doc, invoice_to_doc, json_text
from indexer.model import Invoice, local_issue_date
from indexer.store.numbering_reports import NumberingScope, NumberRun, sqlite_numbering_runs
from indexer.store.protocol import (
    DuplicateInvoiceError,
    IssuedPosition,
    PackageCommit,
    PackageExistsError,
    StoredPackage,
    StoreUnavailableError,
)
from indexer.store.sqlite_files import (
    READ_PRAGMAS,
    Step,
    migrate,
    private_file,
    write_transaction,
)

#: Version 1: the invoices table and its first indexes, packages as a WITHOUT ROWID table.
_V1 = """
CREATE TABLE IF NOT EXISTS invoices (
    doc_id            TEXT PRIMARY KEY,
    scheme            TEXT NOT NULL CHECK (scheme IN ('vn', 'cn')),
    seller_tax_id     TEXT,
    template          TEXT,
    series            TEXT,
    number            INTEGER,
    invoice_code      TEXT,
    invoice_number    TEXT,
    authority_code    TEXT,
    issued_at         TEXT NOT NULL,
    issued_ts         INTEGER NOT NULL,
    issued_on         TEXT NOT NULL,
    currency          TEXT NOT NULL,
    amount_before_tax INTEGER NOT NULL,
    tax_amount        INTEGER NOT NULL,
    total_amount      INTEGER NOT NULL,
    seller_name       TEXT,
    buyer_tax_id      TEXT,
    buyer_name        TEXT,
    type_code         TEXT,
    check_code        TEXT,
    kind              TEXT NOT NULL,
    original_id       TEXT,
    lifecycle         TEXT NOT NULL,
    relations         TEXT NOT NULL,
    package_id        TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS invoices_authority_code
    ON invoices (authority_code) WHERE authority_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS invoices_vn_series
    ON invoices (seller_tax_id, template, series, number) WHERE scheme = 'vn';
CREATE INDEX IF NOT EXISTS invoices_cn_code
    ON invoices (invoice_code, invoice_number) WHERE scheme = 'cn';
CREATE INDEX IF NOT EXISTS invoices_buyer ON invoices (buyer_tax_id, issued_on);
CREATE TABLE IF NOT EXISTS packages (
    package_id  TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    notice      TEXT NOT NULL
) WITHOUT ROWID;
"""
_PACKAGE_COLUMNS = "package_id, sender, digest, received_at, notice"
#: Version 4: packages as a rowid table. Its notices run to megabytes for large packages, and
#: a WITHOUT ROWID table keeps them in its key b-tree, where finding one package id read
#: whole notices.
_V4 = (
    "CREATE TABLE packages_v4 (package_id TEXT NOT NULL PRIMARY KEY, sender TEXT NOT NULL,"  # noqa: S608 (constants)
    " digest TEXT NOT NULL, received_at TEXT NOT NULL, notice TEXT NOT NULL);"
    f"INSERT INTO packages_v4 ({_PACKAGE_COLUMNS}) SELECT {_PACKAGE_COLUMNS} FROM packages;"
    "DROP TABLE packages; ALTER TABLE packages_v4 RENAME TO packages;")
#: Rows read at a time by a data step.
_STEP_PAGE = 10_000


async def _v5_redate(conn: aiosqlite.Connection) -> None:
    """Version 5: `issued_on` is the issue date in the scheme's zone (`local_issue_date`).
    Releases up to v4 wrote the date of whatever offset the sender used, so an invoice sent
    as `2025-12-31T17:30:00Z` (2026-01-01 in Vietnam) was filed under 2025-12-31. Each row's
    day is derived again from its `issued_at`, a page at a time in key order; only rows whose
    day differs are written (inside `migrate`'s one transaction)."""
    after = ""
    while rows := list(await conn.execute_fetchall(
            "SELECT doc_id, scheme, issued_at, issued_on FROM invoices WHERE doc_id > ?"
            " ORDER BY doc_id LIMIT ?", (after, _STEP_PAGE))):
        changed = [(day, doc_id) for doc_id, scheme, issued_at, issued_on in rows
                   if (day := local_issue_date(scheme, datetime.fromisoformat(issued_at))
                       .isoformat()) != issued_on]
        await conn.executemany("UPDATE invoices SET issued_on = ? WHERE doc_id = ?", changed)
        after = rows[-1][0]


#: The store's migration steps (`migrate`); step i takes a file from version i to i + 1.
_LAYOUT: tuple[Step, ...] = (
    _V1,
    # v2: the month scan.
    "CREATE INDEX IF NOT EXISTS invoices_issued ON invoices (issued_on, doc_id)",
    # v3: a seller's Chinese numbering sequences, for the missing-invoice report.
    "CREATE INDEX IF NOT EXISTS invoices_cn_seller"
    " ON invoices (seller_tax_id, invoice_code, invoice_number) WHERE scheme = 'cn'",
    _V4,
    _v5_redate,
)
SCHEMA_VERSION = len(_LAYOUT)
_COLUMNS = ", ".join(DOC_FIELDS)
_PLACEHOLDERS = ", ".join(f":{name}" for name in DOC_FIELDS)
_INSERT = f"INSERT INTO invoices ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608 (constants)
_UPDATE = ("UPDATE invoices SET lifecycle = :lifecycle, relations = :relations"
           " WHERE doc_id = :doc_id")
_SELECT = f"SELECT {_COLUMNS} FROM invoices"  # noqa: S608 (constants)
#: Sets of ids travel as one JSON array parameter, expanded by SQLite's json_each: no SQL text
#: is ever built from input, and no host-parameter limit applies.
_IN_JSON = "IN (SELECT value FROM json_each(?))"
# Every statement is a constant assembled here, at import, from constants only.
_GET_ONE = f"{_SELECT} WHERE doc_id = ?"
_GET_MANY = f"{_SELECT} WHERE doc_id {_IN_JSON}"
_GET_BY_CODE = f"{_SELECT} WHERE authority_code = ?"
_SCAN = (f"{_SELECT} WHERE issued_on >= ? AND issued_on < ? AND doc_id > ?"
         " ORDER BY doc_id LIMIT ?")
_PING = "SELECT count(*) FROM (SELECT 1 FROM packages LIMIT 1)"
_CODES_TAKEN = f"SELECT authority_code FROM invoices WHERE authority_code {_IN_JSON}"  # noqa: S608


log = logging.getLogger("indexer.store.sqlite")

#: Another connection's commit (another service process, the reconciler process, a CLI
#: ingest) reaches this process's invoice cache within this many seconds.
CACHE_RECHECK_SECONDS = 0.001


#: A point read on the event loop slower than this means SQLite was retrying a held lock
#: inside the library (a WAL-index lock held by another process, as during WAL recovery, is
#: retried for about 10 s whatever the busy timeout), and the whole loop waited with it.
#: Point reads then go through the writer's thread, where the request path's timeout bounds
#: them (`fallback.lookup.resilience`) and the loop goes on, until a health probe (`ping`,
#: also on that thread meanwhile) reads the file within this time again.
SLOW_INLINE_READ_SECONDS = 0.5


class SqliteUnavailable(StoreUnavailableError):
    """The file could not be read or written now: locked past the busy timeout, an I/O
    error, a full disk. Integrity errors (a taken key) are not this: they are answers."""


P = ParamSpec("P")
T = TypeVar("T")


def _unavailable_on_failure(method: Callable[P, Coroutine[Any, Any, T]],
                            ) -> Callable[P, Coroutine[Any, Any, T]]:
    """SQLite's operational errors become `SqliteUnavailable`, so the breaker counts them
    and lookups fall back to the replica instead of answering 500."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:  # OperationalError and the rest
            raise SqliteUnavailable(f"{method.__name__}: {exc}") from exc

    return guarded


def _row_to_invoice(row: sqlite3.Row | tuple[object, ...]) -> Invoice:
    return invoice_from_doc(dict(zip(DOC_FIELDS, row, strict=True)))


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA busy_timeout = 5000")
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    return conn


def _connect_reader(path: Path) -> sqlite3.Connection:
    """Read-only, used only on the event loop thread; a short busy timeout bounds the rare
    wait (WAL index recovery) that could otherwise hold the loop."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=True)
    conn.execute("PRAGMA busy_timeout = 100")
    conn.execute("PRAGMA query_only = ON")
    for pragma in READ_PRAGMAS:
        conn.execute(pragma)
    return conn


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: Path, writer: aiosqlite.Connection,
                 reader: sqlite3.Connection, cache_size: int = 50_000,
                 recheck_seconds: float = CACHE_RECHECK_SECONDS) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        # Decoded invoices by doc id, valid while the file is unchanged: SQLite bumps
        # `PRAGMA data_version` whenever any other connection, in this process or another,
        # commits. Reading it costs about 8 us, a third of a cached lookup, so it is read at
        # most once per `recheck_seconds`; this store's own commits force the next read to
        # check. A hit therefore never serves a state older than this store's own last
        # commit, nor older than another connection's commit by more than `recheck_seconds`.
        self._cache: dict[str, Invoice | None] = {}
        self._cache_size = cache_size
        self._cache_version = -1
        self._recheck_seconds = recheck_seconds
        self._checked_at = -math.inf
        self._inline_paused = False

    @property
    def reads_inline(self) -> bool:
        """Whether point reads run on the event loop now (`SLOW_INLINE_READ_SECONDS`)."""
        return not self._inline_paused

    def _timed_inline(self, started: float) -> None:
        seconds = time.monotonic() - started
        if seconds > SLOW_INLINE_READ_SECONDS and not self._inline_paused:
            self._inline_paused = True
            log.warning("a point read held the event loop; reads go through the writer's "
                        "thread until a probe is fast again", extra={"seconds": round(seconds, 3)})

    async def _read_one(self, sql: str, arg: str, what: str) -> Invoice | None:
        """A point read on the writer's thread (while inline reads are paused)."""
        try:
            rows = list(await self._writer.execute_fetchall(sql, (arg,)))
        except sqlite3.DatabaseError as exc:
            raise SqliteUnavailable(f"{what}: {exc}") from exc
        return _row_to_invoice(rows[0]) if rows else None

    def _recheck(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= self._recheck_seconds:
            try:
                version = int(self._reader.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.DatabaseError as exc:  # a locked WAL index, an I/O error
                raise SqliteUnavailable(f"get_invoice: {exc}") from exc
            self._checked_at = now
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version

    def _cached(self) -> dict[str, Invoice | None]:
        self._recheck()
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        return self._cache

    def version(self) -> int | None:
        """The file's state as the invoice cache knows it: the same number while nothing was
        committed to it, checked as cheaply and as often as the cache checks (this store's
        own commits at once, another connection's within `recheck_seconds`); None while
        point reads are off the loop (nothing cheap to tell by then). For what is built from
        the invoices read and must go when they change (`verify.lookup.reuse`). Raises
        `SqliteUnavailable` as a read would."""
        if not self.reads_inline:
            return None
        self._recheck()
        return self._cache_version

    @_unavailable_on_failure
    async def ping(self) -> None:
        """Reads the file on both connections (`SELECT 1` alone would not touch it). While
        point reads are off the loop, only on the writer's thread: a fast read there puts
        them back on the loop."""
        if self._inline_paused:
            started = time.monotonic()
            await self._writer.execute_fetchall(_PING)
            if time.monotonic() - started <= SLOW_INLINE_READ_SECONDS:
                self._inline_paused = False
                log.info("point reads are back on the event loop")
            return
        started = time.monotonic()
        try:
            self._reader.execute(_PING).fetchone()
        finally:
            self._timed_inline(started)
        await self._writer.execute_fetchall(_PING)

    async def get_invoice(self, doc_id: str) -> Invoice | None:
        if not self.reads_inline:
            return await self._read_one(_GET_ONE, doc_id, "get_invoice")
        started = time.monotonic()
        try:
            cache = self._cached()
            if doc_id in cache:
                return cache[doc_id]
            try:
                row = self._reader.execute(_GET_ONE, (doc_id,)).fetchone()
            except sqlite3.DatabaseError as exc:
                raise SqliteUnavailable(f"get_invoice: {exc}") from exc
            invoice = cache[doc_id] = _row_to_invoice(row) if row else None
            return invoice
        finally:
            self._timed_inline(started)

    @_unavailable_on_failure
    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]:
        rows = await self._writer.execute_fetchall(
            _GET_MANY, (json.dumps(sorted(set(doc_ids))),))
        return {inv.doc_id: inv for inv in map(_row_to_invoice, rows)}

    async def find_by_authority_code(self, code: str) -> Invoice | None:
        if not self.reads_inline:
            return await self._read_one(_GET_BY_CODE, code, "find_by_authority_code")
        started = time.monotonic()
        try:
            row = self._reader.execute(_GET_BY_CODE, (code,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise SqliteUnavailable(f"find_by_authority_code: {exc}") from exc
        finally:
            self._timed_inline(started)
        return _row_to_invoice(row) if row else None

    @_unavailable_on_failure
    async def existing_authority_codes(self, codes: Iterable[str]) -> set[str]:
        rows = await self._writer.execute_fetchall(
            _CODES_TAKEN, (json.dumps(sorted(set(codes))),))
        return {row[0] for row in rows}

    @_unavailable_on_failure
    async def authority_code_packages(self, codes: Iterable[str]) -> dict[str, str]:
        rows = await self._writer.execute_fetchall(
            "SELECT authority_code, package_id FROM invoices WHERE authority_code IN "
            "(SELECT value FROM json_each(?))", (json.dumps(sorted(set(codes))),))
        return {str(code): str(package_id) for code, package_id in rows}

    @_unavailable_on_failure
    async def get_package(self, package_id: str) -> StoredPackage | None:
        rows = list(await self._writer.execute_fetchall(
            "SELECT package_id, sender, digest, received_at, notice FROM packages"
            " WHERE package_id = ?", (package_id,)))
        if not rows:
            return None
        pid, sender, digest, received_at, notice = rows[0]
        return StoredPackage(pid, sender, digest, datetime.fromisoformat(received_at),
                             json.loads(notice))

    async def commit_package(self, package: StoredPackage, new: Sequence[Invoice],
                             changed: Sequence[Invoice]) -> None:
        await self.commit_packages([PackageCommit(package, new, changed)])

    @_unavailable_on_failure
    async def commit_packages(self, batch: Sequence[PackageCommit]) -> None:
        """One transaction: every package record, then every new invoice, then every change
        in package order (a later package's change of an invoice an earlier one created
        lands on top of it)."""
        conn = self._writer
        try:
            async with write_transaction(conn):
                try:
                    await conn.executemany(
                        "INSERT INTO packages (package_id, sender, digest, received_at,"
                        " notice) VALUES (?, ?, ?, ?, ?)",
                        [(c.package.package_id, c.package.sender, c.package.digest,
                          c.package.received_at.isoformat(),
                          json_text(c.package.notice)) for c in batch])
                except sqlite3.IntegrityError as exc:
                    raise PackageExistsError(
                        ", ".join(c.package.package_id for c in batch)) from exc
                try:
                    await conn.executemany(_INSERT, [invoice_to_doc(inv) for c in batch
                                                     for inv in c.new])
                except sqlite3.IntegrityError as exc:
                    raise DuplicateInvoiceError(str(exc)) from exc
                await conn.executemany(_UPDATE, [invoice_to_doc(inv) for c in batch
                                                 for inv in c.changed])
        finally:  # committed or not, the next cached read checks the file first
            self._checked_at = -math.inf

    @_unavailable_on_failure
    async def get_packages(self, package_ids: Iterable[str]) -> dict[str, StoredPackage]:
        rows = await self._writer.execute_fetchall(
            "SELECT package_id, sender, digest, received_at, notice FROM packages "
            "WHERE package_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(package_ids))),))
        return {r[0]: StoredPackage(r[0], r[1], r[2], datetime.fromisoformat(r[3]),
                                    json.loads(r[4])) for r in rows}

    @_unavailable_on_failure
    async def scan_invoices(self, issued_from: date, issued_until: date, *,
                            after: str | None = None, limit: int = 1000) -> list[Invoice]:
        rows = await self._writer.execute_fetchall(
            _SCAN, (issued_from.isoformat(), issued_until.isoformat(), after or "", limit))
        return [_row_to_invoice(row) for row in rows]

    @_unavailable_on_failure
    async def count_invoices(self) -> int:
        rows = list(await self._writer.execute_fetchall("SELECT count(*) FROM invoices"))
        return int(rows[0][0])

    async def numbering_runs(self, scope: NumberingScope, *,
                             page_size: int = 5_000) -> AsyncGenerator[list[NumberRun], None]:
        """Window functions over the series index, on a connection of the report's own."""
        async with aclosing(sqlite_numbering_runs(self.path, scope,
                                                  page_size=page_size)) as pages:
            async for page in pages:
                yield page

    # Walks the `invoices_buyer` index, whose entries end with the primary key (WITHOUT ROWID),
    # so the (issued_on, doc_id) order and the row-value cursor need no sort.
    _BUYER_SCAN = (f"{_SELECT} INDEXED BY invoices_buyer WHERE buyer_tax_id = ?"
                   " AND (issued_on, doc_id) > (?, ?) AND issued_on < ?"
                   " ORDER BY issued_on, doc_id LIMIT ?")

    @_unavailable_on_failure
    async def scan_buyer_invoices(self, buyer_tax_id: str, issued_from: date,
                                  issued_until: date, *, after: IssuedPosition | None = None,
                                  limit: int = 1000) -> list[Invoice]:
        start = IssuedPosition(issued_from, "")  # before every id of the first day
        if after is not None and after > start:
            start = after
        rows = await self._writer.execute_fetchall(
            self._BUYER_SCAN, (buyer_tax_id, start.issued_on.isoformat(), start.doc_id,
                               issued_until.isoformat(), limit))
        return [_row_to_invoice(row) for row in rows]


@asynccontextmanager
async def open_sqlite_store(path: Path, *, recheck_seconds: float = CACHE_RECHECK_SECONDS,
                            ) -> AsyncIterator[SqliteStore]:
    """Open (creating and migrating if needed) the store file; close both connections after.
    `recheck_seconds`: how stale another connection's commit may be in the invoice cache."""
    private_file(path)  # owner-only, and so are its -wal and -shm (sqlite_files.py)
    writer = await _connect(path)
    try:
        await migrate(writer, _LAYOUT)
        reader = _connect_reader(path)
        try:
            yield SqliteStore(path, writer, reader, recheck_seconds=recheck_seconds)
        finally:
            reader.close()
    finally:
        await writer.close()
