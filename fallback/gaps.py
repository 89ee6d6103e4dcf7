"""The gap ledger: every lookup we could not answer authoritatively, kept until the
reconciler resolves it.

Durability: a SQLite file of its own (`gaps.sqlite3` in the data directory), never the
primary index. A gap is recorded exactly when the primary may be down, so the ledger must
not depend on it; a local file is written whether Elasticsearch and Redis are up or not, and
survives restarts. Each service process has its own (as with the intake journal); the
reconciler of that process resolves them.

Keying: at most one *open* gap per lookup key (`lookup_key`: the document id, e.g.
`vn:0100109106:1:C22TAA:123`, or `authority_code:<code>`). Asking again adds to its count
and last-seen time; a requester (API key id) is listed once with its own count and its last
`callback_url`. After resolution the next miss opens a new gap. The reason is the first one
seen (`primary_down`, `upstream_outage`, `intake_lag`).

What the reconciler needs is stored with the gap: the key as asked (`key`, with the scheme),
the seller when the key names one, the caller's `issued_on` when given (to re-apply the
upstream-window rule), the outage window in force, and per requester the callback URL with
`notified_at` (set by whoever notifies). `resolve` closes a gap with its outcome.


Resolution (`resolve_many`, the reconciler) keeps the outcome (`found` / `missing`) and the
final verification answer; each requester's callback is then due (`due_callbacks`) until
`callback_sent`, or `callback_failed` with the next attempt's time (backoff set by the
caller) and the attempts counted, until the caller gives up.

Repeated asks (docs/outages.md#misses-under-load): the ledger remembers, for a moment
(`moment_s`, 1 s by default), each key's open gap that a commit of this process found open
on disk and the requesters it holds rows of. A requester asking again about such a key,
without a callback URL, is answered that gap's id at once; its ask is counted in the next
batch, in that gap only while it is still open (`fallback.gap_writer`): with the next asks
that wait for a commit, or else within `late_flush_s` (0.2 s), so a stream of repeated asks
costs a few commits a second, not one per fsync (a read of the ledger writes them first,
so it sees every count answered before it). A kill may lose the count of such asks
answered within that last fraction of a second (as the audit trail's buffer), never a gap,
a requester's row or an id handed out. A first ask of a requester, and any ask with a
callback URL, waits for its commit. The memory of a gap goes when this process resolves it,
and ends a moment after the last commit that found the gap open (another process's
resolution, on the same file or the shared ledger, is not contradicted longer than that).
It lasts longer, up to `quiet_s`, while every batch since that commit read the file's
`data_version` unchanged (nobody else wrote it, so nobody else resolved the gap) and the
last batch is within the moment: a change seen ends every such extension at once.
"""

from __future__ import annotations

import asyncio
import builtins
import enum
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import orjson

from fallback.breaker import Clock, utc_now
from fallback.gap_writer import GapWriter, KeyAsks, Late, LateAsks, Pending, coalesced
from indexer.store.sqlite_files import Step, open_sqlite_file, run_script, write_transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gaps (
    id            TEXT PRIMARY KEY,
    lookup_key    TEXT NOT NULL,
    scheme        TEXT NOT NULL,
    key_json      TEXT NOT NULL,
    seller_tax_id TEXT,
    issued_on     TEXT,
    reason        TEXT NOT NULL,
    outage_id     INTEGER,
    status        TEXT NOT NULL,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL,
    count         INTEGER NOT NULL,
    resolved_at   REAL,
    resolution    TEXT,
    answer_json   TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS gaps_one_open ON gaps (lookup_key) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS gaps_seller ON gaps (seller_tax_id);
CREATE TABLE IF NOT EXISTS gap_requesters (
    gap_id       TEXT NOT NULL REFERENCES gaps (id),
    key_id       TEXT NOT NULL,
    callback_url TEXT,
    first_seen   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    count        INTEGER NOT NULL,
    notified_at  REAL,
    notify_attempts INTEGER NOT NULL DEFAULT 0,
    next_notify_at  REAL,
    notify_error    TEXT,
    PRIMARY KEY (gap_id, key_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gap_requesters_key ON gap_requesters (key_id);
"""
#: Columns added after the first release, before the file was numbered.
_ADDED_COLUMNS = (
    ("gaps", "answer_json", "TEXT"),
    ("gap_requesters", "notify_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("gap_requesters", "next_notify_at", "REAL"),
    ("gap_requesters", "notify_error", "TEXT"),
)


async def _number_the_layout(conn: aiosqlite.Connection) -> None:
    """Step 1: a file from before the numbering (version 0: the first release's layout, or
    the current one, whose columns were added when missing at each open) gets the current
    layout; a new file is created with it. Inside `migrate`'s transaction, so the column
    check cannot race another process's."""
    await run_script(conn, _SCHEMA)
    for table, column, declaration in _ADDED_COLUMNS:
        present = {str(row[1]) for row in await conn.execute_fetchall(
            "SELECT * FROM pragma_table_info(?)", (table,))}
        if column not in present:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


#: The gap ledger's migration steps (`migrate`): a later change of layout is a new step.
_LAYOUT: tuple[Step, ...] = (_number_the_layout,)
#: How long a commit's finding that a key's gap is open answers repeated asks at once.
MOMENT_S = 1.0
#: How long repeated asks answered from memory wait to be written when no commit is due.
LATE_FLUSH_S = 0.2
#: How long a gap found open keeps answering repeated asks while nothing but this process's
#: batch writer has written the file since (`PRAGMA data_version`, read with every batch).
QUIET_S = 600.0
#: Keys remembered at most (the oldest go first): a bound on the memory.
MAX_REMEMBERED = 100_000
log = logging.getLogger("fallback.gaps")


class GapReason(enum.StrEnum):
    PRIMARY_DOWN = "primary_down"
    UPSTREAM_OUTAGE = "upstream_outage"
    INTAKE_LAG = "intake_lag"


class GapStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def _stamp(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Requester:
    key_id: str
    callback_url: str | None
    first_seen: float
    last_seen: float
    count: int
    notified_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "callback_url": self.callback_url,
                "first_seen": _stamp(self.first_seen), "last_seen": _stamp(self.last_seen),
                "count": self.count, "notified_at": _stamp(self.notified_at)}


@dataclass(frozen=True, slots=True)
class Gap:
    id: str
    lookup_key: str
    scheme: str
    key: dict[str, Any]
    seller_tax_id: str | None
    issued_on: date | None
    reason: GapReason
    outage_id: int | None
    status: GapStatus
    first_seen: float
    last_seen: float
    count: int
    resolved_at: float | None
    resolution: str | None
    requesters: tuple[Requester, ...] = field(default=())
    #: the final verification answer, once resolved
    answer: dict[str, Any] | None = None

    def as_dict(self, *, requesters: Collection[str] | None = None) -> dict[str, Any]:
        """`requesters`: the key ids whose entries may be shown (None: all of them)."""
        shown = [r.as_dict() for r in self.requesters
                 if requesters is None or r.key_id in requesters]
        return {"id": self.id, "lookup_key": self.lookup_key, "scheme": self.scheme,
                "key": self.key, "seller_tax_id": self.seller_tax_id,
                "issued_on": self.issued_on.isoformat() if self.issued_on else None,
                "reason": str(self.reason), "outage_id": self.outage_id,
                "status": str(self.status), "first_seen": _stamp(self.first_seen),
                "last_seen": _stamp(self.last_seen), "count": self.count,
                "resolved_at": _stamp(self.resolved_at), "resolution": self.resolution,
                "answer": self.answer,
                "requester_count": len(self.requesters), "requesters": shown}


class GapOutcome(enum.StrEnum):
    """How the reconciler resolved a gap: the primary holds the invoice (`found`, with the
    final answer), or it still does not once the grace period has passed (`missing`)."""

    FOUND = "found"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Resolution:
    gap_id: str
    outcome: GapOutcome
    answer: dict[str, Any]
    #: the gap's lookup key (where the shared ledger finds the open gap it resolves)
    lookup_key: str = ""


@dataclass(frozen=True, slots=True)
class DueCallback:
    """A resolved gap whose requester left a callback URL not yet notified."""

    gap: Gap
    key_id: str
    callback_url: str
    attempts: int
    #: the gap id the requester was answered with, when not the gap's own (a gap asked on
    #: two processes of the deployment: `fallback.shared_gaps`)
    answered_id: str | None = None


@dataclass(frozen=True, slots=True)
class GapRequest:
    """One unconfirmed lookup, as the ledger records it."""

    lookup_key: str
    scheme: str
    key: dict[str, Any]
    seller_tax_id: str | None
    reason: GapReason
    requester: str
    callback_url: str | None = None
    issued_on: date | None = None
    outage_id: int | None = None


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which gaps a non-admin caller sees: those whose seller is in `tax_ids`, and those it
    asked about itself (`key_id`)."""

    key_id: str
    tax_ids: frozenset[str]


class GapLedger(Protocol):
    async def record(self, request: GapRequest) -> Gap: ...

    async def record_id(self, request: GapRequest) -> str:
        """`record` without reading the gap back: its id, once the ask is on disk."""

    async def get(self, gap_id: str) -> Gap | None: ...

    async def list(self, *, status: GapStatus | None = None, reason: GapReason | None = None,
                   since: datetime | None = None, after: str | None = None,
                   limit: int = 100, visible_to: Visibility | None = None) -> list[Gap]: ...

    async def resolve(self, gap_id: str, resolution: str) -> Gap | None: ...

    async def count(self, status: GapStatus) -> int: ...


class ReconcileLedger(GapLedger, Protocol):
    """What the reconciler and the callback notifier need of a ledger: this file's
    (`SqliteGapLedger`), or the deployment's (`fallback.shared_gaps.SharedGapLedger`)."""

    async def resolve_many(self, resolutions: Collection[Resolution]) -> int: ...

    def arrived(self) -> bool:
        """Whether open gaps came into the ledger since last asked (and forget them): the
        shared ledger's forwarded after an outage, worth a run at once."""

    async def due_callbacks(self, *, max_attempts: int,
                            limit: int = 100) -> builtins.list[DueCallback]: ...

    async def claim_callback(self, gap_id: str, key_id: str) -> bool:
        """Whether this process may send the callback now (no other one is sending it)."""

    async def callback_sent(self, gap_id: str, key_id: str) -> None: ...

    async def callback_failed(self, gap_id: str, key_id: str, error: str,
                              next_attempt: datetime) -> None: ...


_GAP_COLUMNS = ("id, lookup_key, scheme, key_json, seller_tax_id, issued_on, reason, "
                "outage_id, status, first_seen, last_seen, count, resolved_at, resolution, "
                "answer_json")
_SELECT = f"SELECT {_GAP_COLUMNS} FROM gaps"  # noqa: S608 (constants)
_SELECT_MANY = _SELECT + " WHERE id IN (SELECT value FROM json_each(?))"  # noqa: S608
# Sets of values are passed as one JSON array parameter: the SQL text never varies.
_REQUESTERS = ("SELECT gap_id, key_id, callback_url, first_seen, last_seen, count, "
               "notified_at FROM gap_requesters WHERE gap_id IN (SELECT value FROM "
               "json_each(?)) ORDER BY first_seen")
_VISIBLE = (" AND (seller_tax_id IN (SELECT value FROM json_each(?)) OR id IN "
            "(SELECT gap_id FROM gap_requesters WHERE key_id = ?))")


@dataclass(slots=True)
class _OnDisk:
    """A key's gap as a commit of this process found it: open, with these requesters' rows
    (`at`: that commit's monotonic time)."""

    gap_id: str
    requesters: set[str]
    at: float


class SqliteGapLedger:
    def __init__(self, conn: aiosqlite.Connection, path: Path, *,
                 clock: Clock = utc_now, moment_s: float = MOMENT_S,
                 monotonic: Callable[[], float] = time.monotonic,
                 late_flush_s: float = LATE_FLUSH_S, quiet_s: float = QUIET_S) -> None:
        self._conn = conn
        self._clock = clock
        self._lock = asyncio.Lock()
        self._pending: list[Pending] = []
        self._late: list[Late] = []
        self._late_flush = late_flush_s
        self._late_timer: asyncio.TimerHandle | None = None
        self._moment = moment_s
        self._quiet = quiet_s
        self._monotonic = monotonic
        #: Oldest commit first (each finding moves its key to the end), so what can no
        #: longer answer is at the front; and each remembered gap's key, to forget by id.
        self._on_disk: OrderedDict[str, _OnDisk] = OrderedDict()
        self._key_of_gap: dict[str, str] = {}
        #: The file's `data_version` on the batch writer's connection at its last batch,
        #: when that batch was, and when a batch last saw it change (another connection
        #: wrote the file): memory older than that answers only within the moment.
        self._version: int | None = None
        self._batch_at = -math.inf
        self._calm_since = monotonic()
        self._batches = GapWriter(path)
        self._writer: asyncio.Task[None] | None = None
        #: Batches written (one transaction each), the asks they held, and the keys, one
        #: ledger write each: what group commit and coalescing saved.
        self.batches = 0
        self.asks = 0
        self.keys = 0
        #: Repeated asks answered from memory, and those of them whose gap was resolved
        #: before their batch (not counted: the gap they were answered with is closed).
        self.early = 0
        self.late_dropped = 0
        self._late_done = 0  # late asks whose batch is over (written, dropped or failed)
        #: Reads waiting for the late asks answered before them (`_counted`): how many
        #: must be done, and the future to set then.
        self._late_readers: list[tuple[int, asyncio.Future[None]]] = []

    async def record(self, request: GapRequest) -> Gap:
        """The ask on disk (never answered from memory), then the gap as it is now."""
        gap = await self.get(await self._on_commit(request))
        assert gap is not None
        return gap

    async def record_id(self, request: GapRequest) -> str:
        """The id of the gap `request` is counted in (a lookup's answer carries it): once
        its ask is on disk; or at once, for a requester's repeated ask without a callback
        URL of a key whose open gap a commit found within the moment (the ask counted in
        the next batch). Concurrent records share one transaction and one fsync, and the
        records of one key in it one write (`fallback.gap_writer`)."""
        if request.callback_url is None:
            known = self._on_disk.get(request.lookup_key)
            if (known is not None and request.requester in known.requesters
                    and self._fresh(known, self._monotonic())):
                self._late.append((request.lookup_key, known.gap_id, request.requester,
                                   self._clock().timestamp()))
                self.early += 1
                if self._writer is None or self._writer.done():  # else it takes them along
                    self._flush_late_soon()
                return known.gap_id
        return await self._on_commit(request)

    async def _on_commit(self, request: GapRequest) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((request, self._clock(), future))
        self._start_writer()
        return await future

    def _start_writer(self) -> None:
        if self._late_timer is not None:  # the writer takes the late asks along
            self._late_timer.cancel()
            self._late_timer = None
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="gap-ledger-write")

    def _flush_late_soon(self) -> None:
        """Write the late asks within `late_flush_s`, unless a batch takes them first."""
        if self._late_timer is None:
            self._late_timer = asyncio.get_running_loop().call_later(
                self._late_flush, self._start_writer)

    def _fresh(self, known: _OnDisk, now: float) -> bool:
        """Whether `known` may still answer: within the moment of the commit that last found
        it open; or, up to `quiet_s`, while every batch since then found the file written by
        nobody else (the last one within the moment: a resolution by another process or
        connection is contradicted no longer than the moment, as before)."""
        return now - known.at < self._moment or (
            self._may_answer(known.at, now) and now - self._batch_at < self._moment)

    def _may_answer(self, at: float, now: float) -> bool:
        """Whether a finding of `at` answers now or may after the next batch: within the
        moment, or within `quiet_s` with no change seen since."""
        age = now - at
        return age < self._moment or (age < self._quiet and at >= self._calm_since)

    def _quiet_since(self, version: int) -> None:
        """A batch committed; `version` is the file's `data_version` it read after."""
        now = self._monotonic()
        if version != self._version:  # another connection wrote: the memory is no proof
            self._version = version
            self._calm_since = now
        self._batch_at = now

    def _prune(self, now: float) -> None:
        """Bounded: what can no longer answer goes, and the oldest past `MAX_REMEMBERED`
        keys. Whether a finding can still answer only gets less likely the older it is, so
        they go from the front, and each batch looks at what goes and one more."""
        on_disk = self._on_disk
        while on_disk:
            lookup_key, first = next(iter(on_disk.items()))
            if len(on_disk) <= MAX_REMEMBERED and self._may_answer(first.at, now):
                return
            self._drop(lookup_key)

    def _drop(self, lookup_key: str) -> None:
        known = self._on_disk.pop(lookup_key, None)
        if known is not None and self._key_of_gap.get(known.gap_id) == lookup_key:
            del self._key_of_gap[known.gap_id]

    def _forget(self, gap_ids: Collection[str]) -> None:
        """No more answers from memory with these gaps (resolved by this process)."""
        for gap_id in gap_ids:
            lookup_key = self._key_of_gap.get(gap_id)
            if lookup_key is not None:
                self._drop(lookup_key)

    def _remember(self, by_key: dict[str, KeyAsks], gap_ids: dict[str, str],
                  late: LateAsks, late_open: set[str]) -> None:
        """What a commit found: each key's open gap and the requesters it now has rows of;
        the late asks' gaps still open (found open again) or resolved (forgotten)."""
        now = self._monotonic()
        self._prune(now)
        for gap_id, lookup_key in late.lookup_keys.items():
            known = self._on_disk.get(lookup_key)
            if known is not None and known.gap_id == gap_id:
                if gap_id in late_open:
                    known.at = now
                    self._on_disk.move_to_end(lookup_key)
                else:  # resolved (by another process on this file) since it was found
                    self._drop(lookup_key)
        for lookup_key, asks in by_key.items():
            gap_id = gap_ids[lookup_key]
            found = self._on_disk.get(lookup_key)
            if found is None or found.gap_id != gap_id:
                self._drop(lookup_key)
                self._on_disk[lookup_key] = _OnDisk(gap_id, set(asks.requesters), now)
                self._key_of_gap[gap_id] = lookup_key
            else:
                found.requesters.update(asks.requesters)
                found.at = now
                self._on_disk.move_to_end(lookup_key)

    async def _counted(self) -> None:
        """Every ask answered so far is written (or its batch failed): a read of this
        ledger sees the counts of the repeated asks it answered from memory."""
        due = self.early
        if self._late_done >= due:
            return
        # Waits for the batch that takes them, not for the writer's end: under a stream of
        # first asks the writer has always more to do. A future of its own, so a read
        # cancelled (a timeout, the reconciler at shutdown) never cancels the writer and
        # with it the lookups waiting for their gap ids.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._late_readers.append((due, done))
        self._start_writer()
        await done

    def _late_over(self, count: int, *, everyone: bool = False) -> None:
        """`count` more late asks' batch is over: the reads waiting for them go on."""
        self._late_done += count
        waiting, self._late_readers = self._late_readers, []
        for due, done in waiting:
            if everyone or due <= self._late_done:
                if not done.done():
                    done.set_result(None)
            else:
                self._late_readers.append((due, done))

    async def drain(self) -> None:
        """Write the late asks now and wait for records in flight (at close: none is lost
        or left unanswered)."""
        while True:
            if self._late:
                self._start_writer()
            if self._writer is None or self._writer.done():
                return
            await self._writer

    async def aclose(self) -> None:
        """Drain, then close the batch writer's connection."""
        await self.drain()
        await self._batches.aclose()

    def _more(self) -> bool:
        """Another batch is due now: asks wait for a commit, or reads for late asks."""
        return bool(self._pending or (self._late and self._late_readers))

    async def _write_pending(self) -> None:
        async with self._lock:
            while True:  # the asks waiting for a commit, and those that came meanwhile
                batch, self._pending = self._pending, []
                late, self._late = self._late, []
                by_key = coalesced(batch)
                late_asks = LateAsks.of(late)
                try:
                    gap_ids, late_open, version = await self._batches.write(by_key,
                                                                              late_asks)
                except BaseException as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if late:
                        log.warning("repeated asks not counted: their batch failed",
                                    extra={"asks": len(late), "error": repr(exc)})
                    cancelled = isinstance(exc, asyncio.CancelledError)
                    self._late_over(len(late), everyone=cancelled)
                    if cancelled:
                        raise
                    if not self._more():
                        break
                    continue
                self.late_dropped += sum(int(n) for g, (n, _) in late_asks.gaps.items()
                                         if g not in late_open)
                self._quiet_since(version)
                self._remember(by_key, gap_ids, late_asks, late_open)
                self.batches += 1
                self.asks += len(batch)
                self.keys += len(by_key)
                for lookup_key, asks in by_key.items():
                    for future in asks.waiting:
                        if not future.done():
                            future.set_result(gap_ids[lookup_key])
                self._late_over(len(late))
                if not self._more():
                    break
        if self._late:  # came during the last batch: no commit is due for them
            self._flush_late_soon()

    async def _requesters(self, gap_ids: list[str]) -> dict[str, list[Requester]]:
        out: dict[str, list[Requester]] = {g: [] for g in gap_ids}
        if not gap_ids:
            return out
        rows = await self._conn.execute_fetchall(_REQUESTERS, (json.dumps(gap_ids),))
        for r in rows:
            out[r[0]].append(Requester(r[1], r[2], r[3], r[4], r[5], r[6]))
        return out

    async def _gaps(self, rows: Any) -> list[Gap]:
        rows = list(rows)
        requesters = await self._requesters([str(r[0]) for r in rows])
        return [Gap(r[0], r[1], r[2], orjson.loads(r[3]), r[4],
                    date.fromisoformat(r[5]) if r[5] else None, GapReason(r[6]), r[7],
                    GapStatus(r[8]), r[9], r[10], r[11], r[12], r[13],
                    tuple(requesters[r[0]]), orjson.loads(r[14]) if r[14] else None)
                for r in rows]

    async def get(self, gap_id: str) -> Gap | None:
        await self._counted()
        rows = await self._conn.execute_fetchall(
            _SELECT + " WHERE id = ?", (gap_id,))
        found = await self._gaps(rows)
        return found[0] if found else None

    async def list(self, *, status: GapStatus | None = None, reason: GapReason | None = None,
                   since: datetime | None = None, after: str | None = None,
                   limit: int = 100, visible_to: Visibility | None = None) -> list[Gap]:
        """Oldest first, paged by id (`after`); `since`: gaps last seen at or after it."""
        await self._counted()
        sql = _SELECT + " WHERE id > ?"
        args: list[Any] = [after or ""]
        if status is not None:
            sql += " AND status = ?"
            args.append(str(status))
        if reason is not None:
            sql += " AND reason = ?"
            args.append(str(reason))
        if since is not None:
            sql += " AND last_seen >= ?"
            args.append(since.timestamp())
        if visible_to is not None:
            sql += _VISIBLE
            args.extend([json.dumps(sorted(visible_to.tax_ids)), visible_to.key_id])
        rows = await self._conn.execute_fetchall(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return await self._gaps(rows)

    async def resolve(self, gap_id: str, resolution: str) -> Gap | None:
        async with self._lock:
            self._forget([gap_id])  # before the commit: no writer runs until it is done
            await self._conn.execute(
                "UPDATE gaps SET status = 'resolved', resolved_at = ?, resolution = ? "
                "WHERE id = ? AND status = 'open'",
                (self._clock().timestamp(), resolution, gap_id))
        return await self.get(gap_id)

    async def resolve_many(self, resolutions: Collection[Resolution]) -> int:
        """Resolve open gaps in one transaction (one fsync for a page of them); how many
        were still open. A gap resolved meanwhile (another reconciler) is left as it is."""
        if not resolutions:
            return 0
        at = self._clock().timestamp()
        rows = [(at, str(r.outcome), orjson.dumps(r.answer).decode(), r.gap_id)
                for r in resolutions]
        async with self._lock:
            self._forget([r.gap_id for r in resolutions])  # before, as in `resolve`
            return await self._resolve_rows(rows)

    async def _resolve_rows(self, rows: builtins.list[tuple[Any, ...]]) -> int:
        async with write_transaction(self._conn):
            before = self._conn.total_changes
            await self._conn.executemany(
                "UPDATE gaps SET status = 'resolved', resolved_at = ?, resolution = ?, "
                "answer_json = ? WHERE id = ? AND status = 'open'", rows)
            return self._conn.total_changes - before

    async def count(self, status: GapStatus) -> int:
        await self._counted()
        rows = list(await self._conn.execute_fetchall(
            "SELECT COUNT(*) FROM gaps WHERE status = ?", (str(status),)))
        return int(rows[0][0])

    async def due_callbacks(self, *, max_attempts: int,
                            limit: int = 100) -> builtins.list[DueCallback]:
        """Callbacks of resolved gaps not yet delivered, whose next attempt is due."""
        rows = list(await self._conn.execute_fetchall(
            "SELECT r.gap_id, r.key_id, r.callback_url, r.notify_attempts "
            "FROM gap_requesters r JOIN gaps g ON g.id = r.gap_id "
            "WHERE g.status = 'resolved' AND r.callback_url IS NOT NULL "
            "AND r.notified_at IS NULL AND r.notify_attempts < ? "
            "AND (r.next_notify_at IS NULL OR r.next_notify_at <= ?) "
            "ORDER BY r.gap_id, r.key_id LIMIT ?",
            (max_attempts, self._clock().timestamp(), limit)))
        gaps = {g.id: g for g in await self._gaps(await self._conn.execute_fetchall(
            _SELECT_MANY, (json.dumps(sorted({str(r[0]) for r in rows})),)))}
        return [DueCallback(gaps[r[0]], r[1], r[2], r[3]) for r in rows if r[0] in gaps]

    async def claim_callback(self, gap_id: str, key_id: str) -> bool:
        """Always: the processes on one file may send a callback twice (receivers key on
        `gap_id`); the shared ledger claims."""
        return True

    def arrived(self) -> bool:
        """Never: a gap is in this file from its lookup on; the reconciler re-checks the
        open ones after an outage and then every `recheck_every`."""
        return False

    async def callback_sent(self, gap_id: str, key_id: str) -> None:
        async with self._lock:
            await self._conn.execute(
                "UPDATE gap_requesters SET notified_at = ?, notify_attempts = "
                "notify_attempts + 1, notify_error = NULL WHERE gap_id = ? AND key_id = ?",
                (self._clock().timestamp(), gap_id, key_id))

    async def callback_failed(self, gap_id: str, key_id: str, error: str,
                              next_attempt: datetime) -> None:
        async with self._lock:
            await self._conn.execute(
                "UPDATE gap_requesters SET notify_attempts = notify_attempts + 1, "
                "notify_error = ?, next_notify_at = ? WHERE gap_id = ? AND key_id = ?",
                (error[:500], next_attempt.timestamp(), gap_id, key_id))


def visible(gap: Gap, who: Visibility | None) -> bool:
    """The same rule as `SqliteGapLedger.list(visible_to=...)`, for a single gap."""
    if who is None:
        return True
    return (gap.seller_tax_id is not None and gap.seller_tax_id in who.tax_ids) or any(
        r.key_id == who.key_id for r in gap.requesters)


@asynccontextmanager
async def open_gap_ledger(path: Path, *, clock: Clock = utc_now, moment_s: float = MOMENT_S,
                          monotonic: Callable[[], float] = time.monotonic,
                          late_flush_s: float = LATE_FLUSH_S, quiet_s: float = QUIET_S,
                          ) -> AsyncIterator[SqliteGapLedger]:
    """WAL with `synchronous=FULL`: a gap the caller was told about survives a power cut.
    `moment_s`: how long a gap found open answers repeated asks from memory (0: never);
    `quiet_s`: how much longer while nobody else writes the file (0: no longer)."""
    async with open_sqlite_file(path, _LAYOUT) as conn:
        ledger = SqliteGapLedger(conn, path, clock=clock, moment_s=moment_s,
                                 monotonic=monotonic, late_flush_s=late_flush_s,
                                 quiet_s=quiet_s)
        try:
            yield ledger
        finally:
            await ledger.aclose()
