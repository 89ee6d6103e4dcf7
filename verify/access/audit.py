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
        rows = await self._conn.execute_fetchall(
            "SELECT at, key_id, role, action, target, outcome, client FROM audit"
            " WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR action = ?2)"
            " AND (?3 IS NULL OR target = ?3) AND (?4 IS NULL OR at_ts >= ?4)"
            " AND (?5 IS NULL OR at_ts < ?5) ORDER BY at_ts DESC, id DESC LIMIT ?6",
            (key_id, action, target, since.timestamp() if since else None,
             until.timestamp() if until else None, limit))
        return [AuditEntry(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
                for r in rows]
