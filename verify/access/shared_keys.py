"""One set of API keys for the deployment (docs/deployment.md#many-processes).

The keys live in Elasticsearch (`<prefix>-keys`, `_id` = key id, the same fields as a row of
`access.sqlite3`, the secret's SHA-256 included). Each process keeps its `api_keys` table as
a local copy, and authenticates from it alone (`verify.access.apikeys.KeyStore`), so keys
keep working while the cluster is down:

- `push`: a key created or revoked in this data directory (the admin API, or `invoice-verify
  keys` on the directory) goes to the cluster: created if its id is not there, its
  revocation written over the document as read (`if_seq_no`), so it is never lost to a
  concurrent write. What the cluster confirmed is marked (`fallback.shared_file`), so it is
  sent once; a change made while the cluster is down waits for it.
- `pull`: the keys changed in the cluster since the last pull (a full pull at the start and
  every `FULL_PULL_S`) come into the local copy.

Merging cannot conflict: a key's fields never change after its creation, and a revocation
is final, so the merged key is revoked when either side says so. A revocation reaches every
process's copy within a push and a pull (`SYNC_INTERVAL_S` each, the admin API pushing at
once), and its key cache (`KEY_CACHE_S`): within the documented 5 s.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite

from fallback.shared_file import SharedFile
from indexer.store.es_state import SharedStateStore, Versioned
from verify.access.apikeys import KeyRecord
from verify.access.roles import Role

log = logging.getLogger("verify.shared_keys")

#: How often keys are pushed and pulled (the admin API also pushes at once).
SYNC_INTERVAL_S = 1.0
#: How long a process trusts the key it last read from its copy: with a push and a pull of
#: a second each, a revocation is in force everywhere within 5 s (docs/access.md).
KEY_CACHE_S = 2.0
#: A pull asks for the keys changed since the last one, less this margin (clocks of the
#: writing hosts, searches seeing writes after the index's refresh).
PULL_OVERLAP_S = 120.0
#: And every so often for all of them.
FULL_PULL_S = 600.0
_KIND = "key"
_COLUMNS = "key_id, secret_hash, role, scopes, name, created_at, created_by, revoked_at"


def _state(revoked_at: str | None) -> str:
    return "active" if revoked_at is None else "revoked"


def _source(row: Any, now: float) -> dict[str, Any]:
    return {
        "key_id": row[0],
        "secret_hash": row[1],
        "role": row[2],
        "scopes": json.loads(row[3]),
        "name": row[4],
        "created_at": row[5],
        "created_by": row[6],
        "revoked_at": row[7],
        "updated_ts": now,
    }


class KeySync:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        file: SharedFile,
        store: SharedStateStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self._file = file
        self._store = store
        self._alias = store.layout.keys
        self._clock = clock
        self._marks: dict[str, str] | None = None
        self._pulled_at: float | None = None  # when the last pull started
        self._full_at = float("-inf")

    async def _known(self) -> dict[str, str]:
        if self._marks is None:
            self._marks = await self._file.marks(_KIND)
        return self._marks

    async def push(self) -> int:
        """Send the local changes the cluster has not confirmed; how many were sent."""
        marks = await self._known()
        rows = await self._conn.execute_fetchall(f"SELECT {_COLUMNS} FROM api_keys")  # noqa: S608
        pending = [r for r in rows if marks.get(r[0]) != _state(r[7])]
        confirmed: dict[str, str] = {}
        try:
            for row in pending:
                confirmed[row[0]] = await self._push_one(row)
        finally:
            await self._file.set_marks(_KIND, confirmed)
            marks.update(confirmed)
        if confirmed:
            await self._store.refresh(self._alias)
        return len(confirmed)

    async def _push_one(self, row: Any) -> str:
        """The key's state in the cluster once this row is there."""
        while True:
            doc = await self._store.get(self._alias, row[0])
            if doc is None:
                if await self._store.create(self._alias, row[0], _source(row, self._clock())):
                    return _state(row[7])
                continue
            if doc.source.get("revoked_at") is not None:
                if row[7] is None:  # revoked elsewhere: in force here from now on
                    await self._merge([doc])
                return "revoked"
            if row[7] is None:
                return "active"
            revoked = {**doc.source, "revoked_at": row[7], "updated_ts": self._clock()}
            if await self._store.replace_if(self._alias, doc, revoked):
                return "revoked"

    async def pull(self) -> int:
        """Bring the keys changed in the cluster into the local copy; how many came."""
        started = self._clock()
        full = self._pulled_at is None or started - self._full_at >= FULL_PULL_S
        query: dict[str, Any] = (
            {"match_all": {}}
            if full or self._pulled_at is None
            else {"range": {"updated_ts": {"gte": self._pulled_at - PULL_OVERLAP_S}}}
        )
        docs = [doc async for doc in self._store.scan(self._alias, query, [{"key_id": "asc"}])]
        await self._merge(docs)
        self._pulled_at = started
        if full:
            self._full_at = started
        return len(docs)

    async def learn(self, docs: list[Versioned]) -> None:
        """These documents of the cluster into the local copy, now (as a pull would)."""
        await self._merge(docs)

    async def _merge(self, docs: list[Versioned]) -> None:
        if not docs:
            return
        marks = await self._known()
        rows = [
            (
                d.source["key_id"],
                d.source["secret_hash"],
                d.source["role"],
                json.dumps(d.source["scopes"]),
                d.source["name"],
                d.source["created_at"],
                d.source["created_by"],
                d.source["revoked_at"],
            )
            for d in docs
        ]
        await self._conn.executemany(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (key_id) DO UPDATE SET "
            "revoked_at = COALESCE(api_keys.revoked_at, excluded.revoked_at)",
            rows,
        )
        confirmed = {r[0]: _state(r[7]) for r in rows if marks.get(r[0]) != _state(r[7])}
        await self._file.set_marks(_KIND, confirmed)
        marks.update(confirmed)

    async def listing(self) -> list[KeyRecord]:
        """The deployment's keys, from the cluster, in the order of the local listing."""
        records = [
            KeyRecord(
                s["key_id"],
                Role(s["role"]),
                tuple(s["scopes"]),
                s["name"],
                s["created_at"],
                s["created_by"],
                s["revoked_at"],
            )
            async for s in self._sources()
        ]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    async def _sources(self) -> AsyncIterator[dict[str, Any]]:
        async for doc in self._store.scan(self._alias, {"match_all": {}}, [{"key_id": "asc"}]):
            yield doc.source
