"""The audit trail: who verified which invoice, when and with what answer; who changed keys,
registries and outage windows.

Recording happens on the hot path, so `record` only appends to a buffer; a background task
writes the buffer in one transaction every `flush_seconds` (and on shutdown). What a crash
can lose is bounded by that interval. Entries older than the retention are purged daily.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import orjson

from verify.access.roles import Principal

log = logging.getLogger("verify.audit")

_INSERT_BATCH = (
    "INSERT INTO audit (at, at_ts, key_id, role, action, target, outcome, client)"
    " SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00', json_extract(value, '$[0]'), 'unixepoch'),"
    " json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
    " json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),"
    " json_extract(value, '$[6]') FROM json_each(?)")


#: `AuditTrail.query`'s filters as SQL, each only when given: a filter written as
#: `(? IS NULL OR target = ?)` cannot be looked up in an index, so SQLite walked the whole
#: trail by time for every check count. Named alone, `target` and `key_id` go through
#: `audit_target` and `audit_key` (tests/verify/access/test_audit_query_plan.py).
_FILTERS = {"key_id": "key_id = ?", "action": "action = ?", "target": "target = ?",
            "since": "at_ts >= ?", "until": "at_ts < ?"}
_COLUMNS = "SELECT at, key_id, role, action, target, outcome, client FROM audit"
_ORDER = " ORDER BY at_ts DESC, id DESC LIMIT ?"


def _select(**given: str | float | None) -> tuple[str, list[str | float]]:
    """The statement for the filters given (None: not filtered on) and their values, the
    limit left to bind last."""
    named = [(name, value) for name, value in given.items() if value is not None]
    where = " AND ".join(_FILTERS[name] for name, _ in named)
    return (_COLUMNS + (f" WHERE {where}" if where else "") + _ORDER,
            [value for _, value in named])


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    key_id: str | None
    role: str | None
    action: str
    target: str | None
    outcome: str | None
    client: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "key_id": self.key_id,
                "role": self.role, "action": self.action, "target": self.target,
                "outcome": self.outcome, "client": self.client}


class AuditTrail:
    def __init__(self, conn: aiosqlite.Connection, *, retention: timedelta,
                 flush_seconds: float = 0.5, max_buffer: int = 100_000) -> None:
        self._conn = conn
        # Rows ready for executemany: recording builds the tuple once, so a flush does no
        # per-entry work on the event loop.
        self._buffer: list[tuple[float, str | None, str | None, str, str | None,
                                 str | None, str | None]] = []
        self.retention = retention
        self.flush_seconds = flush_seconds
        self._max_buffer = max_buffer
        self.dropped = 0

    def record(self, principal: Principal | None, action: str, target: str | None,
               outcome: str | None, client: str | None = None) -> None:
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1  # the writer is stuck; say so rather than grow without bound
            if self.dropped % 1000 == 1:
                log.error("audit buffer full, entries dropped", extra={"dropped": self.dropped})
            return
        self._buffer.append((time.time(), principal.key_id if principal else None,
                             principal.role.value if principal else None, action, target,
                             outcome, client))

    async def flush(self) -> int:
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            # One statement for the whole batch: SQLite expands the JSON array itself, so
            # the writer thread takes the GIL once per flush, not once per row (per-row
            # inserts contended with the event loop and cost lookups ~45 us each).
            await self._conn.execute(_INSERT_BATCH, (orjson.dumps(batch),))
        except BaseException:
            self._buffer[:0] = batch
            raise
        return len(batch)

    async def purge(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - self.retention
        cursor = await self._conn.execute("DELETE FROM audit WHERE at_ts < ?",
                                          (cutoff.timestamp(),))
        return cursor.rowcount

    async def run(self) -> None:
        """Flush forever (purging once a day); cancelled at shutdown after a last flush."""
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
                if loop.time() - last_purge > 86_400:
                    await self.purge()
                    last_purge = loop.time()
            except Exception:
                log.exception("audit flush failed; will retry")

    async def query(self, *, key_id: str | None = None, action: str | None = None,
                    target: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        await self.flush()
        sql, args = _select(key_id=key_id, action=action, target=target,
                            since=since.timestamp() if since else None,
                            until=until.timestamp() if until else None)
        rows = await self._conn.execute_fetchall(sql, (*args, limit))
        return [AuditEntry(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
                for r in rows]
