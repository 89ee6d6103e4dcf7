"""The watches and their events on Elasticsearch (`<prefix>-watches`, `<prefix>-watchevents`):
the distributed deployment's store (`INVOICE_ES_URL`), shared by every process, so a watch
made through one process is matched with the changes another commits, and its events are in
every process's feed (docs/watches.md#deployments).

Not local first, unlike the keys or the gaps: the primary is on the same cluster, so while
it is down no change is committed to be told of, and a watch asked for then is refused (503)
rather than kept where the others cannot see it.

- **One watch per (key id, key).** Its document id is a digest of the two: a renewal from any
  process finds it (realtime GET) and keeps its watch id; two processes making it at once
  meet in `op_type=create`, and the loser renews the winner's.
- **One event per change.** An event's document id is a digest of (watch, kind, subject,
  status, what made it), the SQLite file's unique index: the commit, a replay, another
  process's sweep all create the same id, and only the first `op_type=create` succeeds.
- **One callback per event.** A process claims an event before it POSTs it: a lease
  (`claimed_by`, `claimed_until`) written over the event as read (`if_seq_no`), as the gap
  callbacks do (`fallback.shared_gaps`); the outcome clears it. A process that dies between
  its claim and the outcome leaves the lease to expire, and another sends it.
- **The feed's cursor** is the event's `seq`, the microseconds of its recording (then one
  more per event of its batch, and past the last one the process gave: exact in a double,
  as numbers pass through JSON). Searches see refreshed documents only: every write is
  refreshed, and the feed lists events older than `SETTLE_S`, so one recorded by another
  process a moment earlier (clocks within that) is not passed by a cursor before it shows.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from indexer.store.es_bulk import BulkOutcome, BulkWriteError, run_bulk
from indexer.store.es_state import SharedStateStore
from indexer.store.es_support import unavailable_on_failure
from verify.watches.model import Change, Watch, WatchEvent, new_id
from verify.watches.store import WatchLimitReached

#: The feed lists events recorded at least this long ago (see the module's docstring).
SETTLE_S = 1.0
_PAGE = 1000


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def watch_doc_id(key_id: str, key: str) -> str:
    return "w-" + _digest(key_id, key)[:40]


def event_id(watch_id: str, kind: str, subject: str, status: str, by: str) -> str:
    """The event's id: the same change told to the same watch is the same id everywhere."""
    return "wev_" + _digest(watch_id, kind, subject, status, by)[:16]


def _watch(source: dict[str, Any]) -> Watch:
    return Watch(str(source["id"]), str(source["key_id"]), str(source["key"]),
                 float(source["created_at"]), float(source["expires_at"]),
                 source.get("callback_url"))


def _event(source: dict[str, Any]) -> WatchEvent:
    return WatchEvent(int(source["seq"]), str(source["id"]), str(source["watch_id"]),
                      str(source["key"]), str(source["kind"]), source.get("invoice_id"),
                      str(source["status"]), float(source["at"]), dict(source["details"]))


def _in_force(now: float) -> dict[str, Any]:
    return {"range": {"expires_at": {"gt": now}}}


class EsWatchStore:
    """`verify.watches.store.SqliteWatchStore`'s operations over the shared state."""

    def __init__(self, store: SharedStateStore, *, node: str | None = None) -> None:
        self.es = store
        self.watches_alias = store.layout.watches
        self.events_alias = store.layout.watch_events
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self._last_seq = 0

    def _seqs(self, now: float) -> int:
        """The first seq of a record: its microseconds, after the last one this process
        gave (a cursor is exact in a double: Elasticsearch's numbers pass through JSON)."""
        return max(int(now * 1e6), self._last_seq + 1)

    async def _all(self, alias: str, query: dict[str, Any],
                   sort: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every matching document's source, a page at a time, on the patient client: the
        fan-out and the sweep read up to every watch, off the request path."""
        await self.es.ensure_layout(self.es.fast)
        found: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            with unavailable_on_failure(f"search {alias}"):
                resp = await self.es.patient.search(index=alias, query=query, sort=sort,
                                                    size=_PAGE, search_after=after)
            hits = resp["hits"]["hits"]
            found.extend(h["_source"] for h in hits)
            if len(hits) < _PAGE:
                return found
            after = list(hits[-1]["sort"])

    async def _held(self, key_id: str, now: float) -> list[Watch]:
        query = {"bool": {"filter": [{"term": {"key_id": key_id}}, _in_force(now)]}}
        hits = await self._all(self.watches_alias, query,
                               [{"created_at": "asc"}, {"id": "asc"}])
        return [_watch(h) for h in hits]

    async def create(self, key_id: str, keys: Sequence[str], *, now: float, expires_at: float,
                     callback_url: str | None, limit: int) -> list[Watch]:
        wanted = list(dict.fromkeys(keys))
        found = await self.es.mget(self.watches_alias,
                                   [watch_doc_id(key_id, k) for k in wanted])
        held = {str(r.source["key"]) for r in found.values()
                if float(r.source["expires_at"]) > now}
        new = [k for k in wanted if k not in held]
        active = await self.count(key_id, now=now) if new else 0
        if active + len(new) > limit:
            raise WatchLimitReached(limit, active, len(new))
        made = await self._create_new(key_id, new, now, expires_at, callback_url)
        for key in wanted:  # renewals, and any new one another process made meanwhile
            if key not in made:
                made[key] = await self._put(key_id, key, now, expires_at, callback_url)
        await self.es.refresh(self.watches_alias)
        return [made[k] for k in keys]

    async def _create_new(self, key_id: str, keys: list[str], now: float, expires_at: float,
                          callback_url: str | None) -> dict[str, Watch]:
        """The watches of keys not held, in one bulk of creates (a request of 1,000 keys is
        one round trip); those whose id exists (an expired watch, or one another process
        made meanwhile) are left to `_put`."""
        if not keys:
            return {}
        sources = {watch_doc_id(key_id, k): {
            "id": new_id("wat"), "key_id": key_id, "key": k, "created_at": now,
            "expires_at": expires_at, "callback_url": callback_url} for k in keys}
        outcome = await self._bulk_create(self.watches_alias, sources)
        return {str(sources[w.doc_id]["key"]): _watch(sources[w.doc_id])
                for w in outcome.written}

    async def _bulk_create(self, alias: str,
                           sources: dict[str, dict[str, Any]]) -> BulkOutcome:
        """`op_type=create` of each (id, source): those written; an id that exists is not
        (its 409 is no failure)."""
        await self.es.ensure_layout(self.es.fast)
        actions = [{"_op_type": "create", "_index": alias, "_id": doc_id, "_source": source}
                   for doc_id, source in sources.items()]
        outcome = BulkOutcome()
        with unavailable_on_failure(f"bulk {alias}"):
            await run_bulk(self.es.patient, actions, outcome, ignore_status=(409,))
        if outcome.failed:
            raise BulkWriteError(outcome.failed)
        return outcome

    async def _put(self, key_id: str, key: str, now: float, expires_at: float,
                   callback_url: str | None) -> Watch:
        """Made, or renewed with the id it has (an expired one is made anew)."""
        doc_id = watch_doc_id(key_id, key)
        while True:
            read = await self.es.get(self.watches_alias, doc_id)
            if read is None:
                source: dict[str, Any] = {"id": new_id("wat"), "key_id": key_id, "key": key,
                          "created_at": now, "expires_at": expires_at,
                          "callback_url": callback_url}
                if await self.es.create(self.watches_alias, doc_id, source):
                    return _watch(source)
                continue  # another process made it meanwhile: renew that one
            source = dict(read.source)
            if float(read.source["expires_at"]) <= now:
                source.update(id=new_id("wat"), created_at=now)
            source.update(expires_at=expires_at, callback_url=callback_url)
            if await self.es.replace_if(self.watches_alias, read, source):
                return _watch(source)

    async def count(self, key_id: str, *, now: float) -> int:
        """On the patient client: a count of a key's watches among every watch."""
        await self.es.ensure_layout(self.es.fast)
        with unavailable_on_failure(f"count {self.watches_alias}"):
            resp = await self.es.patient.count(index=self.watches_alias, query={
                "bool": {"filter": [{"term": {"key_id": key_id}}, _in_force(now)]}})
        return int(resp["count"])

    async def watches(self, key_id: str, *, now: float) -> list[Watch]:
        return await self._held(key_id, now)

    async def delete(self, key_id: str, watch_id: str) -> bool:
        query = {"bool": {"filter": [{"term": {"key_id": key_id}},
                                     {"term": {"id": watch_id}}]}}
        hits, _ = await self.es.search(self.watches_alias, query, [{"id": "asc"}], size=1)
        deleted = bool(hits) and await self.es.delete_if(self.watches_alias, hits[0])
        await self.es.refresh(self.watches_alias)
        return deleted

    async def watched_keys(self, *, now: float) -> list[str]:
        hits = await self._all(self.watches_alias, _in_force(now),
                               [{"key": "asc"}, {"id": "asc"}])
        return sorted({str(h["key"]) for h in hits})

    async def watch_of(self, key_id: str, key: str, *, now: float) -> Watch | None:
        read = await self.es.get(self.watches_alias, watch_doc_id(key_id, key))
        if read is None or float(read.source["expires_at"]) <= now:
            return None
        return _watch(read.source)

    async def record(self, changes: Collection[Change], *, now: float) -> int:
        """Every watch in force of the changes' keys (made by the change's time, for the
        sweep's) gets its event, created once across the deployment; how many were new."""
        keys = sorted({key for c in changes for key in c.keys})
        if not keys:
            return 0
        query = {"bool": {"filter": [{"terms": {"key": keys}}, _in_force(now)]}}
        watches = [_watch(h) for h in await self._all(
            self.watches_alias, query, [{"key": "asc"}, {"id": "asc"}])]
        by_key: dict[str, list[Watch]] = {}
        for w in watches:
            by_key.setdefault(w.key, []).append(w)
        base = self._seqs(now)
        todo: list[tuple[str, dict[str, Any]]] = []
        for change in changes:
            subject = change.invoice_id or change.keys[0]
            for key in change.keys:
                for w in by_key.get(key, ()):
                    if change.at is not None and w.created_at > change.at:
                        continue
                    eid = event_id(w.id, change.kind, subject, change.status, change.by)
                    todo.append((eid, {
                        "seq": base + len(todo), "id": eid, "watch_id": w.id,
                        "key_id": w.key_id, "key": w.key, "kind": change.kind,
                        "invoice_id": change.invoice_id, "status": change.status,
                        "at": now, "details": change.details, "callback_url": w.callback_url,
                        "attempts": 0, "next_at": None, "claimed_by": None,
                        "claimed_until": None, "sent_at": None, "error": None}))
        if not todo:
            return 0
        self._last_seq = base + len(todo) - 1
        # an event there already is one recorded before (by the commit, a replay, a sweep)
        outcome = await self._bulk_create(self.events_alias, dict(todo))
        if outcome.written:
            await self.es.refresh(self.events_alias)
        return len(outcome.written)

    async def events(self, key_id: str, *, after: int = 0, key: str | None = None,
                     limit: int = 100) -> list[WatchEvent]:
        settled = int((time.time() - SETTLE_S) * 1e6)
        filters: list[dict[str, Any]] = [{"term": {"key_id": key_id}},
                                         {"range": {"seq": {"gt": after, "lte": settled}}}]
        if key is not None:
            filters.append({"term": {"key": key}})
        hits, _ = await self.es.search(self.events_alias, {"bool": {"filter": filters}},
                                       [{"seq": "asc"}], size=limit)
        return [replace(_event(h.source), delivery=_delivery(h.source)) for h in hits]

    async def latest(self, key_id: str, *, key: str | None = None, before: int | None = None,
                     limit: int = 50) -> list[WatchEvent]:
        filters: list[dict[str, Any]] = [{"term": {"key_id": key_id}}]
        if key is not None:
            filters.append({"term": {"key": key}})
        if before is not None:
            filters.append({"range": {"seq": {"lt": before}}})
        hits, _ = await self.es.search(self.events_alias, {"bool": {"filter": filters}},
                                       [{"seq": "desc"}], size=limit)
        return [_event(h.source) for h in hits]

    async def due(self, *, now: float, max_attempts: int,
                  limit: int = 100) -> list[tuple[WatchEvent, str, int]]:
        query = {"bool": {
            "filter": [{"exists": {"field": "callback_url"}},
                       {"range": {"attempts": {"lt": max_attempts}}}],
            "must_not": [{"exists": {"field": "sent_at"}},
                         {"range": {"next_at": {"gt": now}}},
                         {"range": {"claimed_until": {"gte": now}}}]}}
        hits, _ = await self.es.search(self.events_alias, query, [{"seq": "asc"}], size=limit)
        return [(_event(h.source), str(h.source["callback_url"]), int(h.source["attempts"]))
                for h in hits]

    async def claim(self, event: WatchEvent, *, now: float, until: float) -> bool:
        read = await self.es.get(self.events_alias, event.id)
        if read is None or read.source.get("sent_at") is not None:
            return False
        held = read.source.get("claimed_until")
        if held is not None and float(held) >= now:
            return False
        claimed = {**read.source, "claimed_by": self.node, "claimed_until": until}
        return await self.es.replace_if(self.events_alias, read, claimed)

    async def _settle(self, event: WatchEvent, **outcome: Any) -> None:
        while True:
            read = await self.es.get(self.events_alias, event.id)
            if read is None:
                return
            source = {**read.source, **outcome, "attempts": int(read.source["attempts"]) + 1,
                      "claimed_by": None, "claimed_until": None}
            if await self.es.replace_if(self.events_alias, read, source):
                await self.es.refresh(self.events_alias)
                return

    async def sent(self, event: WatchEvent, *, now: float) -> None:
        await self._settle(event, sent_at=now, error=None)

    async def failed(self, event: WatchEvent, error: str, *, next_at: float) -> None:
        await self._settle(event, error=error, next_at=next_at)

    async def delivery(self, event: WatchEvent) -> tuple[int, float | None, str | None]:
        read = await self.es.get(self.events_alias, event.id)
        found = None if read is None else _delivery(read.source)
        assert found is not None, "an event with a callback"
        return found

    async def prune(self, *, now: float, keep_events_s: float) -> int:
        gone = await self.es.delete_matching(self.watches_alias,
                                             {"range": {"expires_at": {"lte": now}}})
        return gone + await self.es.delete_matching(
            self.events_alias, {"range": {"at": {"lt": now - keep_events_s}}})


def _delivery(source: dict[str, Any]) -> tuple[int, float | None, str | None] | None:
    if source.get("callback_url") is None:
        return None
    return int(source["attempts"]), source.get("sent_at"), source.get("error")
