"""The deployment's outage windows (docs/deployment.md#many-processes): `WindowSync`, the
`WindowSharing` an `OutageLog` is given when `INVOICE_ES_URL` is set.

Where they live: Elasticsearch (`<prefix>-outages`, `_id` = the window's id), with a local
copy in every process. Each process keeps its own windows in its `outages.sqlite3` (declared
through it or its CLI, detected by its breakers) and the other processes' in
`outage_copies` of its `shared.sqlite3`, which the `OutageLog` reads with its own. So a
maintenance window declared anywhere is known on every process while the cluster is down,
which is when it matters; the cluster is only where they meet.

How they travel: `sync` (the log's `refresh`: at start, at every probe, and at once after a
declaration) sends this process's windows whose state changed since the cluster confirmed
it, and brings the windows changed in the cluster since the last pull (all of them at the
start and every `FULL_PULL_S`). A window changes once at most (a detected window ends), so
its version is 1 open, 2 ended, written as the document's external version: an older state
never overwrites a newer one, whichever process sends it. Ids are the second of creation
times a million plus a random part (`new_id`), unique across processes without asking any,
time-ordered, and exact as JSON numbers until the year 2255.

The cluster down: `sync` logs it once, keeps the copies as they were, and sends what waits
at a later probe.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from fallback.outages import COLUMNS, SHARED_IDS_FROM, OutageWindow
from fallback.shared_file import SharedFile
from indexer.store.es_state import SharedStateStore, Versioned
from indexer.store.protocol import StoreUnavailableError

log = logging.getLogger("fallback.shared_outages")

#: A pull asks for the windows changed since the last one, less this margin (the clocks of
#: the writing hosts; searches seeing writes only after the index's refresh).
PULL_OVERLAP_S = 120.0
FULL_PULL_S = 600.0
#: One sync at the most, so a slow cluster does not hold the health monitor's probe.
SYNC_TIMEOUT_S = 2.0
_KIND = "outage"


def version(window: OutageWindow) -> int:
    return 1 if window.end is None else 2


def _source(window: OutageWindow, origin: str, now: float) -> dict[str, Any]:
    return {
        "id": window.id,
        "origin": origin,
        "system": str(window.system),
        "kind": str(window.kind),
        "start_ts": window.start.timestamp(),
        "end_ts": None if window.end is None else window.end.timestamp(),
        "reason": window.reason,
        "declared_by": window.declared_by,
        "created_at": window.created_at.isoformat(),
        "updated_ts": now,
    }


class WindowSync:
    def __init__(
        self, file: SharedFile, store: SharedStateStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._file = file
        self._store = store
        self._alias = store.layout.outages
        self._clock = clock
        self._marks: dict[str, str] | None = None
        self._pulled_at: float | None = None
        self._full_at = float("-inf")
        self._failing = False

    @property
    def copies(self) -> aiosqlite.Connection:
        return self._file.conn

    def new_id(self) -> int:
        return int(self._clock()) * 1_000_000 + secrets.randbelow(1_000_000)

    async def sync(self, own: Sequence[OutageWindow]) -> None:
        try:
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                await self.push(own)
                await self.pull()
        except (StoreUnavailableError, TimeoutError) as exc:
            if not self._failing:
                log.warning(
                    "outage windows: the cluster did not answer; the local copies stand",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            self._failing = True
            return
        if self._failing:
            log.info("outage windows: the cluster answers again")
        self._failing = False

    async def push(self, own: Sequence[OutageWindow]) -> int:
        if self._marks is None:
            self._marks = await self._file.marks(_KIND)
        marks = self._marks
        sent: dict[str, str] = {}
        try:
            for window in own:
                if window.id < SHARED_IDS_FROM or marks.get(str(window.id)) == str(version(window)):
                    continue
                await self._store.put_versioned(
                    self._alias,
                    str(window.id),
                    _source(window, self._file.node, self._clock()),
                    version(window),
                )  # False: as new a state is there already
                sent[str(window.id)] = str(version(window))
        finally:
            await self._file.set_marks(_KIND, sent)
            marks.update(sent)
        if sent:
            await self._store.refresh(self._alias)
        return len(sent)

    async def pull(self) -> int:
        started = self._clock()
        full = self._pulled_at is None or started - self._full_at >= FULL_PULL_S
        query: dict[str, Any] = {"bool": {"must_not": {"term": {"origin": self._file.node}}}}
        if not full:
            assert self._pulled_at is not None
            query["bool"]["filter"] = {
                "range": {"updated_ts": {"gte": self._pulled_at - PULL_OVERLAP_S}}
            }
        docs = [doc async for doc in self._store.scan(self._alias, query, [{"id": "asc"}])]
        await self._copy(docs)
        self._pulled_at = started
        if full:
            self._full_at = started
        return len(docs)

    async def _copy(self, docs: list[Versioned]) -> None:
        if not docs:
            return
        rows = [
            (
                s["id"],
                s["system"],
                s["kind"],
                s["start_ts"],
                s["end_ts"],
                s["reason"],
                s["declared_by"],
                s["created_at"],
                s["origin"],
                1 if s["end_ts"] is None else 2,
            )
            for s in (doc.source for doc in docs)
        ]
        await self._file.conn.executemany(
            f"INSERT INTO outage_copies ({COLUMNS}, origin, version) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "end_ts = excluded.end_ts, reason = excluded.reason, version = excluded.version "
            "WHERE excluded.version > outage_copies.version",
            rows,
        )
