"""Outage windows: when a system could not answer, or will not.

Two kinds, one table (`outages.sqlite3` in the data directory, beside the gap ledger):

- `detected`: written by the service itself when the breaker around a dependency opens
  (start) and closes again (end). The processes sharing the file (`serve --workers`,
  compose's replicas on one volume) share one open window per system, each process that
  sees the outage a *holder* of it (`outage_holders`: a lease renewed at every `refresh`,
  i.e. every probe, and given up when the process closes the log). A process's breaker
  closing removes its hold; the window ends when no live holder is left, so a process that
  recovered (or one starting fresh: `close_dangling`) never ends a window another live
  process still sees. A window whose holders all died (their leases, `HOLD_LEASE`, ran out)
  or left is closed by the next refresh or start of any process on the file.
- `declared`: maintenance announced ahead of time (`POST /api/v1/outages`, `invoice-verify
  outage declare`). System `primary`: from its start the service answers from the replica
  without trying the primary, so no request has to fail first. System `upstream`: the tax
  authority's system is down, so invoices issued meanwhile reach us late; misses are not
  authoritative (see `upstream_hides`).

Every read on the request path is served from an in-memory list of the windows that can
still matter (`refresh`, run at start, after each write and by the health monitor every few
seconds, so a window declared from the CLI is seen within one probe interval).

Shared (`INVOICE_ES_URL`, docs/deployment.md#many-processes): the log is given a
`WindowSharing` (`fallback.shared_outages`). This file keeps this process's own windows,
with ids unique across the deployment (`WindowSharing.new_id`); `refresh` sends the ones
that changed to the cluster and brings the other processes' into a local copy of their own
(the same columns), which the reads take together with this file's. A declared window is
sent at once, so it is in force on every process within one probe interval; a detected one
at the next probe. The copies are what the process knows with the cluster down.
"""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from fallback.breaker import Clock, utc_now
from fallback.gaps import GapReason
from indexer.store.sqlite_files import open_sqlite_file

MAX_DECLARED = timedelta(days=31)
#: Windows made with sharing on have ids from here up (`WindowSharing.new_id`); smaller ids
#: are this file's own from before, never sent.
SHARED_IDS_FROM = 10**12
#: Local time zone of an invoice's issue date, per scheme (the spec's `issued_on`).
SCHEME_TZ = {"vn": timezone(timedelta(hours=7)), "cn": timezone(timedelta(hours=8))}

#: A window's columns after its id: in this file, and in the copies of the other processes'
#: windows (`fallback.shared_file`).
WINDOW_COLUMNS = """
    system      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    start_ts    REAL NOT NULL,
    end_ts      REAL,
    reason      TEXT NOT NULL,
    declared_by TEXT,
    created_at  TEXT NOT NULL"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS outages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,{WINDOW_COLUMNS}
);
CREATE INDEX IF NOT EXISTS outages_end ON outages (end_ts);
"""
#: Step 2: who holds each open detected window (module docstring).
_HOLDERS = """
CREATE TABLE IF NOT EXISTS outage_holders (
    window_id   INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    lease_until REAL NOT NULL,
    PRIMARY KEY (window_id, holder)
) WITHOUT ROWID;
"""
#: How long a holder's claim on a detected window lasts unrenewed (its process refreshes
#: the log at every probe, every few seconds): after that it is taken to be dead.
HOLD_LEASE = timedelta(minutes=2)


class System(enum.StrEnum):
    PRIMARY = "primary"
    UPSTREAM = "upstream"
    REPLICA = "replica"


class WindowKind(enum.StrEnum):
    DETECTED = "detected"
    DECLARED = "declared"


class OutageError(ValueError):
    """A window that cannot be declared (end before start, too long, unknown system)."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class OutageWindow:
    id: int
    system: System
    kind: WindowKind
    start: datetime
    end: datetime | None  # None: still going on
    reason: str
    declared_by: str | None
    created_at: datetime

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "system": str(self.system), "kind": str(self.kind),
                "start": _stamp(self.start), "end": _stamp(self.end) if self.end else None,
                "reason": self.reason, "declared_by": self.declared_by,
                "created_at": _stamp(self.created_at)}


def _window(row: Any) -> OutageWindow:
    return OutageWindow(int(row[0]), System(row[1]), WindowKind(row[2]), _at(row[3]),
                        None if row[4] is None else _at(row[4]), row[5], row[6],
                        datetime.fromisoformat(row[7]))


COLUMNS = "id, system, kind, start_ts, end_ts, reason, declared_by, created_at"
_SELECT = f"SELECT {COLUMNS} FROM outages"  # noqa: S608 (constants)


def select_windows(table: str, *, system: System | None = None,
                   kind: WindowKind | None = None, since: datetime | None = None,
                   after: int = 0, limit: int = 100) -> tuple[str, list[Any]]:
    """The listing's query (`OutageLog.list`) on `table`: this file's `outages`, or the
    copies of the other processes' windows, which have the same columns."""
    sql = f"SELECT {COLUMNS} FROM {table} WHERE id > ?"  # noqa: S608 (constants)
    args: list[Any] = [after]
    if system is not None:
        sql += " AND system = ?"
        args.append(str(system))
    if kind is not None:
        sql += " AND kind = ?"
        args.append(str(kind))
    if since is not None:
        sql += " AND (end_ts IS NULL OR end_ts >= ?)"
        args.append(since.timestamp())
    return sql + " ORDER BY id LIMIT ?", [*args, limit]


class WindowSharing(Protocol):
    """The deployment's windows (`fallback.shared_outages.WindowSync`)."""

    @property
    def copies(self) -> aiosqlite.Connection:
        """The other processes' windows, table `outage_copies` (`COLUMNS`, and more)."""

    def new_id(self) -> int:
        """An id no other process's window has."""

    async def sync(self, own: Sequence[OutageWindow]) -> None:
        """Send the windows of `own` that changed, bring the others'; never raises for the
        cluster being down (the copies then stay as they were)."""


def day_bounds(day: date, scheme: str) -> tuple[datetime, datetime]:
    """The instant range of a local issue date in the scheme's time zone."""
    start = datetime.combine(day, time(0), SCHEME_TZ.get(scheme, UTC))
    return start, start + timedelta(days=1)


def within_lag(issued_on: date, scheme: str, now: datetime, lag: timedelta) -> bool:
    """The caller says the invoice was issued on a day that overlaps the last `lag`."""
    start, end = day_bounds(issued_on, scheme)
    return start <= now and end > now - lag


@dataclass(frozen=True, slots=True)
class MissWindow:
    """Why a miss from a healthy primary is not authoritative now: an upstream window hides
    it (`outage`), or the invoice may still be on its way (the intake lag, no window)."""

    reason: GapReason
    outage: OutageWindow | None

    @property
    def outage_id(self) -> int | None:
        return None if self.outage is None else self.outage.id


class OutageLog:
    def __init__(self, conn: aiosqlite.Connection, *, clock: Clock = utc_now,
                 horizon: timedelta = timedelta(days=2),
                 sharing: WindowSharing | None = None, lease: timedelta = HOLD_LEASE) -> None:
        """`horizon`: how long after its end a window is still kept in memory (at least the
        intake lag, for `upstream_hides`). `sharing`: the deployment's windows (module
        docstring). `lease`: how long this process's hold on a detected window lasts
        between refreshes."""
        self._conn = conn
        #: This process, as a holder of detected windows (unique per log opened).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = lease
        self._clock = clock
        self.horizon = horizon
        self._sharing = sharing
        self._lock = asyncio.Lock()
        self._live: list[OutageWindow] = []
        #: Moved whenever the windows in memory change (recorded, closed, declared, synced
        #: from another process): what was concluded from them before may no longer hold
        #: (a `not_found` may be `unconfirmed` now). Read by `verify.lookup.reuse`.
        self.generation = 0

    # ---- request path (memory only) ----------------------------------------------------

    def active(self, system: System, moment: datetime | None = None) -> OutageWindow | None:
        """A declared window of `system` in force now (maintenance), if any."""
        if not self._live:  # the usual case: no window to check, so no clock to read
            return None
        at = moment or self._clock()
        for window in self._live:
            if window.system is system and window.kind is WindowKind.DECLARED \
                    and window.covers(at):
                return window
        return None

    def detected(self, system: System) -> OutageWindow | None:
        """The detected window of `system` still open, if any."""
        for window in self._live:
            if window.system is system and window.kind is WindowKind.DETECTED \
                    and window.end is None:
                return window
        return None

    def upstream_hides(self, scheme: str, issued_on: date | None, lag: timedelta,
                       moment: datetime | None = None) -> OutageWindow | None:
        """The upstream window that makes a miss unconfirmed now, if any
        (docs/outages.md#intake-lag-and-upstream-windows).

        A window counts from its start until `lag` after its end (the authority's backlog
        reaching us). While it counts, a miss is not authoritative; a caller's `issued_on`
        narrows that to invoices issued from `lag` before the window's start (then in flight)
        to `lag` after its end."""
        if not self._live:
            return None
        now = moment or self._clock()
        for window in self._live:
            if window.system is not System.UPSTREAM or window.start > now:
                continue
            if window.end is not None and now >= window.end + lag:
                continue
            if issued_on is None:
                return window
            day_start, day_end = day_bounds(issued_on, scheme)
            if day_start < (window.end or now) + lag and day_end > window.start - lag:
                return window
        return None

    def miss_window(self, scheme: str, issued_on: date | None, lag: timedelta,
                    moment: datetime | None = None) -> MissWindow | None:
        """What makes a miss from a healthy primary unconfirmed now, if anything
        (docs/outages.md#intake-lag-and-upstream-windows): an upstream window
        (`upstream_hides`), else the caller's `issued_on` lying within the intake lag of
        now. None: the miss is authoritative."""
        now = moment or self._clock()
        window = self.upstream_hides(scheme, issued_on, lag, now)
        if window is not None:
            return MissWindow(GapReason.UPSTREAM_OUTAGE, window)
        if issued_on is not None and within_lag(issued_on, scheme, now, lag):
            return MissWindow(GapReason.INTAKE_LAG, None)
        return None

    # ---- writes and listing -------------------------------------------------------------

    async def refresh(self) -> None:
        """The windows that can still matter into memory; shared, after sending this
        process's changed windows and bringing the others' (`WindowSharing.sync`). This
        process's holds on detected windows are renewed, and the windows no live process
        holds any more are closed."""
        await self._renew_and_sweep()
        if self._sharing is not None:
            own = await self._conn.execute_fetchall(_SELECT + " WHERE id >= ?",
                                                    (SHARED_IDS_FROM,))
            await self._sharing.sync([_window(r) for r in own])
        await self._reload()

    async def _reload(self) -> None:
        cutoff = (self._clock() - self.horizon).timestamp()
        live = "WHERE (end_ts IS NULL OR end_ts > ?)"
        rows = list(await self._conn.execute_fetchall(
            f"{_SELECT} {live} ORDER BY start_ts", (cutoff,)))
        if self._sharing is not None:  # the others' maintenance and upstream windows
            rows += await self._sharing.copies.execute_fetchall(
                f"SELECT {COLUMNS} FROM outage_copies {live} AND kind = 'declared'",  # noqa: S608
                (cutoff,))
        windows = sorted((_window(r) for r in rows), key=lambda w: w.start)
        if windows != self._live:
            self.generation += 1
        self._live = windows

    async def declare(self, system: System, start: datetime, end: datetime, reason: str,
                      declared_by: str | None) -> OutageWindow:
        if system not in (System.PRIMARY, System.UPSTREAM):
            raise OutageError("declare a window for system primary or upstream")
        if start.tzinfo is None or end.tzinfo is None:
            raise OutageError("start and end need a UTC offset")
        if end <= start:
            raise OutageError("the window must end after it starts")
        if end - start > MAX_DECLARED:
            raise OutageError(f"a declared window lasts at most {MAX_DECLARED.days} days")
        window = await self._insert(system, WindowKind.DECLARED, start, end, reason,
                                    declared_by)
        if self._sharing is not None:  # in force on every process within a probe interval
            await self._sharing.sync([window])
        return window

    async def _insert(self, system: System, kind: WindowKind, start: datetime,
                      end: datetime | None, reason: str, by: str | None) -> OutageWindow:
        async with self._lock:
            cursor = await self._conn.execute(
                "INSERT INTO outages (id, system, kind, start_ts, end_ts, reason, declared_by, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (None if self._sharing is None else self._sharing.new_id(), str(system),
                 str(kind), start.timestamp(), None if end is None else end.timestamp(),
                 reason, by, self._clock().isoformat()))
            window_id = cursor.lastrowid
            await self._conn.commit()
        await self._reload()
        assert window_id is not None
        found = await self.get(window_id)
        assert found is not None
        return found

    async def open_detected(self, system: System, at: datetime, reason: str) -> OutageWindow:
        """Start a detected window, unless one of `system` is already open (another process
        on this file sees the outage too); either way this process holds it."""
        rows = list(await self._conn.execute_fetchall(
            _SELECT + " WHERE system = ? AND kind = 'detected' AND end_ts IS NULL",
            (str(system),)))
        window = _window(rows[0]) if rows else await self._insert(
            system, WindowKind.DETECTED, at, None, reason, None)
        async with self._lock:
            await self._conn.execute(
                "INSERT INTO outage_holders (window_id, holder, lease_until) VALUES (?, ?, ?) "
                "ON CONFLICT (window_id, holder) DO UPDATE SET lease_until = "
                "excluded.lease_until", (window.id, self.holder, self._lease_end()))
        return window

    def _lease_end(self) -> float:
        return (self._clock() + self.lease).timestamp()

    async def close_detected(self, system: System, at: datetime) -> None:
        """This process's breaker closed: its hold on the open window of `system` ends, and
        the window with it unless another live process still holds it."""
        async with self._lock:
            await self._conn.execute(
                "DELETE FROM outage_holders WHERE holder = ? AND window_id IN (SELECT id FROM "
                "outages WHERE system = ? AND kind = 'detected' AND end_ts IS NULL)",
                (self.holder, str(system)))
            await self._close_unheld("", at, system)
        await self._reload()

    async def _close_unheld(self, note: str, at: datetime,
                            system: System | None = None) -> None:
        """End the open detected windows (of `system`) no live process holds, at `at`."""
        sql = ("UPDATE outages SET end_ts = MAX(start_ts, ?), reason = reason || ? WHERE "
               "kind = 'detected' AND end_ts IS NULL AND NOT EXISTS (SELECT 1 FROM "
               "outage_holders h WHERE h.window_id = outages.id AND h.lease_until > ?)")
        args: list[Any] = [at.timestamp(), note, self._clock().timestamp()]
        if system is not None:
            sql += " AND system = ?"
            args.append(str(system))
        await self._conn.execute(sql, args)
        await self._conn.execute(
            "DELETE FROM outage_holders WHERE window_id IN (SELECT id FROM outages WHERE "
            "end_ts IS NOT NULL)")

    async def _renew_and_sweep(self) -> None:
        if not any(w.kind is WindowKind.DETECTED and w.end is None for w in self._live):
            return  # nothing held here; another process's new window is seen after _reload
        async with self._lock:
            await self._conn.execute("UPDATE outage_holders SET lease_until = ? WHERE "
                                     "holder = ?", (self._lease_end(), self.holder))
            await self._close_unheld(" (its processes stopped)", self._clock())

    async def close_dangling(self) -> None:
        """Detected windows left open by processes that died (or closed the log) and that
        no live process holds: closed at this start. A window another live process on the
        file holds stays open."""
        async with self._lock:
            await self._close_unheld(" (closed at restart)", self._clock())
        await self._reload()

    async def let_go(self) -> None:
        """This process stops holding its windows (it closes the log): those no other live
        process holds are closed by the next refresh or start on the file."""
        async with self._lock:
            await self._conn.execute("DELETE FROM outage_holders WHERE holder = ?",
                                     (self.holder,))

    async def get(self, window_id: int) -> OutageWindow | None:
        for conn, table in self._tables():
            rows = list(await conn.execute_fetchall(
                f"SELECT {COLUMNS} FROM {table} WHERE id = ?", (window_id,)))  # noqa: S608
            if rows:
                return _window(rows[0])
        return None

    def _tables(self) -> list[tuple[aiosqlite.Connection, str]]:
        """Where windows are read: this file, and the copies of the others' when shared."""
        own = [(self._conn, "outages")]
        return own if self._sharing is None else [*own, (self._sharing.copies,
                                                         "outage_copies")]

    async def list(self, *, system: System | None = None, kind: WindowKind | None = None,
                   since: datetime | None = None, after: int = 0,
                   limit: int = 100) -> list[OutageWindow]:
        """Oldest first, paged by id; `since`: windows not ended before it. Shared: the
        deployment's windows, as far as this process knows them."""
        sql, args = select_windows("outages", system=system, kind=kind, since=since,
                                   after=after, limit=limit)
        rows = list(await self._conn.execute_fetchall(sql, args))
        if self._sharing is not None:
            sql, args = select_windows("outage_copies", system=system, kind=kind,
                                       since=since, after=after, limit=limit)
            rows += await self._sharing.copies.execute_fetchall(sql, args)
        return sorted((_window(r) for r in rows), key=lambda w: w.id)[:limit]


@asynccontextmanager
async def open_outage_log(path: Path, *, clock: Clock = utc_now,
                          horizon: timedelta = timedelta(days=2),
                          sharing: WindowSharing | None = None) -> AsyncIterator[OutageLog]:
    async with open_sqlite_file(path, (_SCHEMA, _HOLDERS)) as conn:
        log = OutageLog(conn, clock=clock, horizon=horizon, sharing=sharing)
        await log.refresh()
        try:
            yield log
        finally:
            await log.let_go()
