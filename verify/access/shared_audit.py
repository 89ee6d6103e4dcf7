"""One audit trail for the deployment (docs/deployment.md#many-processes), shipped the way
Filebeat or Vector ship a log: every process writes its entries to its own `access.sqlite3`
first (`verify.access.audit`, as the embedded default does), and `AuditShipper` forwards
them, oldest first, to `<prefix>-audit` on Elasticsearch, marking how far it got
(`fallback.shared_file`). While the cluster is down the entries wait in the local file,
however long; nothing is lost and nothing is sent twice: each document's id is the data
directory's node id and the entry's local id, and a batch is created, not indexed, so a
batch sent again after a crash (before its mark was written) changes nothing.

The trail is read from the cluster (`query`): the entries of every process, newest first,
with this process's own sent just before, so what it recorded is there. Searches see
entries once the index refreshes (every second), so another process's lookups appear within
its next shipment and a refresh. Old entries are purged there as here
(`INVOICE_AUDIT_RETENTION_DAYS`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from fallback.shared_file import SharedFile
from indexer.store.es_state import SharedStateStore
from verify.access.audit import AuditEntry

#: Entries per shipment (one bulk request).
BATCH = 2000
#: What a read of the trail waits for this process's own entries to be shipped.
SHIP_ON_READ_S = 1.0
_SENT = "audit.sent"


class AuditShipper:
    def __init__(
        self, conn: aiosqlite.Connection, file: SharedFile, store: SharedStateStore
    ) -> None:
        self._conn = conn
        self._file = file
        self._store = store
        self._alias = store.layout.audit

    async def ship(self) -> int:
        """Forward every entry written locally since the last shipment; how many."""
        sent = int(await self._file.value(_SENT) or 0)
        shipped = 0
        while True:
            rows = list(
                await self._conn.execute_fetchall(
                    "SELECT id, at, at_ts, key_id, role, action, target, outcome, client "
                    "FROM audit WHERE id > ? ORDER BY id LIMIT ?",
                    (sent, BATCH),
                )
            )
            if not rows:
                return shipped
            await self._store.create_many(
                self._alias,
                [
                    (
                        f"{self._file.node}-{r[0]}",
                        {
                            "uid": f"{self._file.node}-{r[0]:012d}",
                            "at": r[1],
                            "at_ts": r[2],
                            "key_id": r[3],
                            "role": r[4],
                            "action": r[5],
                            "target": r[6],
                            "outcome": r[7],
                            "client": r[8],
                        },
                    )
                    for r in rows
                ],
            )
            sent = int(rows[-1][0])
            await self._file.set_value(_SENT, str(sent))
            shipped += len(rows)

    async def query(
        self,
        *,
        key_id: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The deployment's trail, newest first (`AuditTrail.query`'s filters), with what
        this process recorded shipped first (for `SHIP_ON_READ_S` at the most: a backlog
        goes on in the background loop)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHIP_ON_READ_S):
                if await self.ship():
                    await self._store.refresh(self._alias)
        filters: list[dict[str, Any]] = [
            {"term": {name: value}}
            for name, value in (("key_id", key_id), ("action", action), ("target", target))
            if value is not None
        ]
        span = {
            name: moment.timestamp()
            for name, moment in (("gte", since), ("lt", until))
            if moment is not None
        }
        if span:
            filters.append({"range": {"at_ts": span}})
        hits, _ = await self._store.search(
            self._alias,
            {"bool": {"filter": filters}},
            [{"at_ts": "desc"}, {"uid": "desc"}],
            size=limit,
        )
        return [
            AuditEntry(
                datetime.fromisoformat(s["at"]),
                s["key_id"],
                s["role"],
                s["action"],
                s["target"],
                s["outcome"],
                s["client"],
            )
            for s in (hit.source for hit in hits)
        ]

    async def purge(self, retention: timedelta, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - retention
        return await self._store.delete_matching(
            self._alias, {"range": {"at_ts": {"lt": cutoff.timestamp()}}}
        )
