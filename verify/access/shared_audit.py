"""One audit trail for the deployment (docs/deployment.md#many-processes), shipped the way
Filebeat or Vector ship a log: every process writes its entries to its own `access.sqlite3`
first (`verify.access.audit`, as the embedded default does), and `AuditShipper` forwards
them, oldest first, to `<prefix>-auditpacks` on Elasticsearch, marking how far it got
(`fallback.shared_file`). While the cluster is down the entries wait in the local file,
however long.

Packs. The entries travel in packs of `PACK`: pack k of a data directory holds its entries
numbered k*PACK+1 to (k+1)*PACK, as one document (id: the node id and k) with the entries
in it and, to be found by, the distinct key ids, actions and targets among them and their
span of time. A document per entry cost the cluster about as much as the lookup the entry
records (osmem-server: 0.4-1.3 ms per document, answering no read meanwhile, so a shipment
under load stalled the lookups' reads past their timeout); a pack of 500 costs it 15-65 ms,
a tenth to a twentieth of that. The pack still filling is sent again, whole, at every
shipment with what was added to it, at an external version that is its last entry's
number: a newer state of a pack replaces an older one, an older or equal one (a shipment
sent again after a crash, before its mark was written; another process on the same data
directory) is refused and changes nothing. So nothing is lost and no entry is there twice.

The trail is read from the cluster (`query`): the entries of every process, newest first,
with this process's own sent just before, so what it recorded is there. Searches see
packs once the index refreshes (every second), so another process's lookups appear within
its next shipment and a refresh. Old packs are purged there (their newest entry older than
`INVOICE_AUDIT_RETENTION_DAYS`) as entries are here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from fallback.shared_file import SharedFile
from indexer.store.es_state import SharedStateStore
from verify.access.audit import AuditEntry

#: Entries per pack document.
PACK = 500
#: Entries per shipment (one bulk request) at the most: a backlog goes in several.
BATCH = 10 * PACK
#: Packs per page when the trail is read.
READ_PAGE = 8
#: What a read of the trail waits for this process's own entries to be shipped.
SHIP_ON_READ_S = 1.0
_SENT = "audit.sent"
_FIELDS = ("at", "at_ts", "key_id", "role", "action", "target", "outcome", "client")
_FILTERED = ("key_id", "action", "target")


def _distinct(rows: Sequence[dict[str, Any]], name: str) -> list[str]:
    return sorted({str(r[name]) for r in rows if r[name] is not None})


def pack_source(node: str, number: int, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The document of pack `number` of `node` holding `entries` (each with its `id`)."""
    moments = [float(e["at_ts"]) for e in entries]
    return {
        "uid": f"{node}-{number:012d}",
        "node": node,
        "first_ts": min(moments),
        "last_ts": max(moments),
        "count": len(entries),
        **{name: _distinct(entries, name) for name in _FILTERED},
        "entries": list(entries),
    }


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
            start = sent // PACK * PACK  # the first entry of the pack `sent + 1` is in
            rows = list(
                await self._conn.execute_fetchall(
                    f"SELECT id, {', '.join(_FIELDS)} FROM audit "  # noqa: S608
                    "WHERE id > ? ORDER BY id LIMIT ?",
                    (start, BATCH),
                )
            )
            if not rows or int(rows[-1][0]) <= sent:
                return shipped
            packs: dict[int, list[dict[str, Any]]] = {}
            for r in rows:
                entry = {"id": int(r[0]), **dict(zip(_FIELDS, r[1:], strict=True))}
                packs.setdefault((int(r[0]) - 1) // PACK, []).append(entry)
            node = self._file.node
            await self._store.put_many_versioned(
                self._alias,
                [
                    (f"{node}-{number}", pack_source(node, number, entries), entries[-1]["id"])
                    for number, entries in packs.items()
                ],
            )
            shipped += sum(1 for r in rows if int(r[0]) > sent)
            sent = int(rows[-1][0])
            await self._file.set_value(_SENT, str(sent))

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
        wanted = {
            name: value
            for name, value in (("key_id", key_id), ("action", action), ("target", target))
            if value is not None
        }
        low = since.timestamp() if since is not None else float("-inf")
        high = until.timestamp() if until is not None else float("inf")
        filters: list[dict[str, Any]] = [{"term": {k: v}} for k, v in wanted.items()]
        if since is not None:
            filters.append({"range": {"last_ts": {"gte": low}}})
        if until is not None:
            filters.append({"range": {"first_ts": {"lt": high}}})
        found: list[tuple[float, str, dict[str, Any]]] = []
        after: list[Any] | None = None
        while True:
            packs, after = await self._store.search(
                self._alias,
                {"bool": {"filter": filters}},
                [{"last_ts": "desc"}, {"uid": "desc"}],
                size=READ_PAGE,
                after=after,
            )
            for pack in packs:
                node = pack.source["node"]
                found += [
                    (float(e["at_ts"]), f"{node}-{int(e['id']):012d}", e)
                    for e in pack.source["entries"]
                    if low <= float(e["at_ts"]) < high
                    and all(e.get(k) == v for k, v in wanted.items())
                ]
            if len(packs) < READ_PAGE:
                break
            # The packs not read yet hold nothing newer than the last one read.
            floor = float(packs[-1].source["last_ts"])
            if sum(1 for moment, _, _ in found if moment > floor) >= limit:
                break
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [
            AuditEntry(
                datetime.fromisoformat(e["at"]),
                e["key_id"],
                e["role"],
                e["action"],
                e["target"],
                e["outcome"],
                e["client"],
            )
            for _, _, e in found[:limit]
        ]

    async def purge(self, retention: timedelta, now: datetime | None = None) -> int:
        """Delete the packs whose newest entry is older than `retention`; how many."""
        cutoff = (now or datetime.now(UTC)) - retention
        return await self._store.delete_matching(
            self._alias, {"range": {"last_ts": {"lt": cutoff.timestamp()}}}
        )
