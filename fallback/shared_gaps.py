"""The deployment's gap ledger (docs/deployment.md#many-processes): `SharedGapLedger`, what
the lookups, `GET /gaps`, the missing-invoice report and the reconciler use when
`INVOICE_ES_URL` is set.

**Local first.** A gap is recorded exactly when the primary may be down, so `record` writes
the process's own `gaps.sqlite3` (`fallback.gaps.SqliteGapLedger`, durable before the
answer, as on the embedded default) and the answer carries that gap's id (a requester's
repeated ask answered from the local ledger's memory of the gap is counted there a fraction
of a second later, and sent with it). `forward` (every second, and before each read) sends
each local gap whose count grew to the shared ledger, `<prefix>-gaps` on Elasticsearch, as
its absolute state (count, times, requesters): sending it twice changes nothing. What the
cluster confirmed is marked in `shared.sqlite3`.

**One open gap per lookup key, across processes.** The open gap of a key is the document
`open-<sha256 of the key>`: an id has one document, so two processes asking about the same
key meet in it. The first process to send creates it (`op_type=create`) and its local gap
id becomes the gap's id; the others add theirs as sources (`sources`: each local gap's
state, by its id; `ids`: all of them, so any of them finds the gap). Count, first and last
seen and the requesters are merged from the sources; every write is a read-modify-write
with `if_seq_no`/`if_primary_term`, read again on a conflict, so no process's asks are lost.
A requester's callback carries the gap id it was answered with.

**Resolved once.** The reconciler of every process re-checks the open gaps and resolves
them through `resolve_many`: resolving moves the open document to one with the gap's own id
(`op_type=create`: the first reconciler to create it resolves the gap, the others find it
there and leave its answer), then closes the open document as read (`if_seq_no`); asks
that arrived meanwhile are carried into the resolved gap first, and the next miss of the
key opens a new gap in it. A process learns the resolution of the gaps it sent (a realtime
mget by id) and resolves its local copies, so its own next miss opens a new gap too (the
local ledger forgets what it remembered of them: no repeated ask is answered with one).
`resolve_many` forwards first (the reconciler may have read the local ledger, before the
forward landed) and resolves through the key's open gap when it holds the gap under its id
or as a merged source.

**Never back to open.** The open document of a key is never deleted: closing it keeps it as
status `closed` (listed nowhere), with a note per local gap it carried, `moved_to` the
resolved gap (kept `MOVED_KEEP_S`, across the key's later gaps). So every write of an open
document is conditional on what is there: `op_type=create` succeeds only on an id that
never had a document, a replace only on the document as read. A forward whose answer was
lost (Elasticsearch frozen: our client timed out, the cluster applied the write when it
resumed) and is sent again, or a late write landing after the reconciler resolved its gap,
cannot open that gap again: a resend reads the note and adds its asks to the resolved gap,
a late create finds the document there, a late replace finds it changed.

**Callbacks delivered once.** A due callback is claimed before it is sent: a lease
(`claimed_by`, `claimed_until`) written over the requester as read (`if_seq_no`), so one
process sends it; sent or failed, the lease is cleared with the outcome. A process that
dies between its claim and the outcome leaves the lease to expire (`claim_seconds`), and
another process sends it: at least once, once unless a process dies mid-send.

**Gaps from before.** A data directory whose ledger was not shared yet (an Elasticsearch
deployment from before this release) sends the gaps it had resolved once, at its first
forward, so the listing and the reports keep them.

**The cluster down.** Reads fall back to the local ledger (this process's gaps, as on the
embedded default) for `DOWN_S` after a failure; records never needed the cluster; what
waits is sent when it answers.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from fallback.breaker import Clock, utc_now
from fallback.gaps import (
    DueCallback,
    Gap,
    GapOutcome,
    GapReason,
    GapRequest,
    GapStatus,
    Requester,
    Resolution,
    SqliteGapLedger,
    Visibility,
)
from fallback.outages import SHARED_IDS_FROM
from fallback.shared_file import SharedFile
from indexer.store.es_bulk import BulkWriteError
from indexer.store.es_state import SharedStateStore, Versioned
from indexer.store.protocol import StoreUnavailableError

log = logging.getLogger("fallback.shared_gaps")

#: After a failure, reads go to the local ledger for this long before trying the cluster.
DOWN_S = 5.0
#: What a read waits for its own forward (of what this process recorded last) and for the
#: cluster's answer, at the most, before it answers from the local ledger.
FORWARD_ON_READ_S = 1.0
READ_TIMEOUT_S = 3.0
#: How long a claimed callback is another process's to send (it sends within
#: `CallbackPolicy.timeout`); then anyone may.
CLAIM_S = 60.0
#: How long a closed open document remembers where each local gap it carried went (a
#: process whose forward's answer was lost sends it again within seconds of the cluster
#: answering; one whose data directory was away longer opens a new gap of the key).
MOVED_KEEP_S = 30 * 86400.0
#: The status of a key's open document once its gap is resolved: no gap, listed nowhere.
_CLOSED = "closed"
_KIND = "gap"
_HISTORY = "gaps.history"
_ERRORS = (StoreUnavailableError, TimeoutError, BulkWriteError)
#: A requester's delivery state, kept across merges (the sources know only the asks).
_DELIVERY = {
    "notified_at": None,
    "notify_attempts": 0,
    "next_notify_at": None,
    "notify_error": None,
    "claimed_by": None,
    "claimed_until": None,
}
T = TypeVar("T")


def open_doc_id(lookup_key: str) -> str:
    """The one document a lookup key's open gap can be (an id fits any key's length)."""
    return "open-" + hashlib.sha256(lookup_key.encode()).hexdigest()


def source_state(gap: Gap) -> dict[str, Any]:
    """A local gap's asks, absolute: sending it again changes nothing."""
    return {
        "count": gap.count,
        "first_seen": gap.first_seen,
        "last_seen": gap.last_seen,
        "issued_on": gap.issued_on.isoformat() if gap.issued_on else None,
        "requesters": {
            r.key_id: {
                "callback_url": r.callback_url,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "count": r.count,
            }
            for r in gap.requesters
        },
    }


def new_doc(gap: Gap) -> dict[str, Any]:
    """The open gap a local gap creates: its id and what it was asked as are the gap's."""
    shared_window = gap.outage_id if (gap.outage_id or 0) >= SHARED_IDS_FROM else None
    return {
        "id": gap.id,
        "lookup_key": gap.lookup_key,
        "scheme": gap.scheme,
        "key": gap.key,
        "seller_tax_id": gap.seller_tax_id,
        "reason": str(gap.reason),
        "outage_id": shared_window,
        "status": str(GapStatus.OPEN),
        "resolved_at": None,
        "resolution": None,
        "answer": None,
        "requesters": [],
        "sources": {gap.id: source_state(gap)},
    }


def live_sources(sources: Mapping[str, Any]) -> dict[str, Any]:
    """The sources of an open document that are its gap's asks (not notes of local gaps
    that went into an earlier, resolved gap of the key)."""
    return {k: v for k, v in sources.items() if "moved_to" not in v}


def _moved_notes(sources: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The notes of where earlier local gaps went, those still kept."""
    return {
        k: v
        for k, v in sources.items()
        if "moved_to" in v and v["moved_at"] >= now - MOVED_KEEP_S
    }


def closed_doc(open_doc: Mapping[str, Any], gap_id: str, now: float) -> dict[str, Any]:
    """The open document of a key once its gap `gap_id` is resolved: no gap (status
    `closed`), each local gap it carried noted as moved to the resolved gap."""
    sources = open_doc["sources"]
    return {
        **open_doc,
        "status": _CLOSED,
        "ids": [],
        "requesters": [],
        "requester_ids": [],
        "due_at": None,
        "updated_ts": now,
        "sources": {
            **_moved_notes(sources, now),
            **{k: {"moved_to": gap_id, "moved_at": now} for k in live_sources(sources)},
        },
    }


def _merged_requesters(
    sources: Mapping[str, Any], before: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per requester: asks summed, first and last seen, the callback URL of its latest ask
    that left one, the gap id it was first answered with; its delivery state as it was."""
    delivery = {r["key_id"]: {k: r.get(k, v) for k, v in _DELIVERY.items()} for r in before}
    merged: dict[str, dict[str, Any]] = {}
    url_at: dict[str, float] = {}
    for gap_id, src in sorted(sources.items(), key=lambda kv: kv[1]["first_seen"]):
        for key_id, asked in src["requesters"].items():
            entry = merged.get(key_id)
            if entry is None:
                entry = merged[key_id] = {
                    "key_id": key_id,
                    "gap_id": gap_id,
                    "callback_url": None,
                    "first_seen": asked["first_seen"],
                    "last_seen": asked["last_seen"],
                    "count": 0,
                    **delivery.get(key_id, _DELIVERY),
                }
            entry["count"] += asked["count"]
            entry["first_seen"] = min(entry["first_seen"], asked["first_seen"])
            entry["last_seen"] = max(entry["last_seen"], asked["last_seen"])
            if asked["callback_url"] and asked["last_seen"] >= url_at.get(key_id, 0.0):
                entry["callback_url"], url_at[key_id] = asked["callback_url"], asked["last_seen"]
    return sorted(merged.values(), key=lambda r: (r["first_seen"], r["key_id"]))


def _due(requester: Mapping[str, Any], resolved_at: float, max_attempts: int) -> float | None:
    """When the requester's callback is next due (None: nothing to send)."""
    if (
        not requester["callback_url"]
        or requester["notified_at"] is not None
        or requester["notify_attempts"] >= max_attempts
    ):
        return None
    return max(requester["next_notify_at"] or resolved_at, requester["claimed_until"] or 0.0)


def settled(doc: dict[str, Any], max_attempts: int, now: float) -> dict[str, Any]:
    """`doc` with what its sources and requesters make of it: totals, ids, due time."""
    sources = live_sources(doc["sources"])
    ordered = sorted(sources.values(), key=lambda s: s["first_seen"])
    requesters = _merged_requesters(sources, doc["requesters"])
    dues = (
        []
        if doc["resolved_at"] is None
        else [
            t
            for t in (_due(r, doc["resolved_at"], max_attempts) for r in requesters)
            if t is not None
        ]
    )
    return {
        **doc,
        "ids": sorted(sources),
        "count": sum(s["count"] for s in ordered),
        "first_seen": ordered[0]["first_seen"],
        "last_seen": max(s["last_seen"] for s in ordered),
        "issued_on": next((s["issued_on"] for s in ordered if s["issued_on"]), None),
        "requesters": requesters,
        "requester_ids": [r["key_id"] for r in requesters],
        "due_at": min(dues, default=None),
        "updated_ts": now,
    }


def gap_of(doc: Mapping[str, Any]) -> Gap:
    return Gap(
        doc["id"],
        doc["lookup_key"],
        doc["scheme"],
        doc["key"],
        doc["seller_tax_id"],
        date.fromisoformat(doc["issued_on"]) if doc["issued_on"] else None,
        GapReason(doc["reason"]),
        doc["outage_id"],
        GapStatus(doc["status"]),
        doc["first_seen"],
        doc["last_seen"],
        doc["count"],
        doc["resolved_at"],
        doc["resolution"],
        tuple(
            Requester(
                r["key_id"],
                r["callback_url"],
                r["first_seen"],
                r["last_seen"],
                r["count"],
                r["notified_at"],
            )
            for r in doc["requesters"]
        ),
        doc["answer"],
    )


def _query(
    *,
    status: GapStatus | None = None,
    reason: GapReason | None = None,
    since: datetime | None = None,
    after: str | None = None,
    visible_to: Visibility | None = None,
) -> dict[str, Any]:
    """`SqliteGapLedger.list`'s filters, as a query of the shared ledger."""
    filters: list[dict[str, Any]] = [
        {"terms": {"status": [str(s) for s in (GapStatus if status is None else [status])]}}
    ]
    if reason is not None:
        filters.append({"term": {"reason": str(reason)}})
    if since is not None:
        filters.append({"range": {"last_seen": {"gte": since.timestamp()}}})
    if after:
        filters.append({"range": {"id": {"gt": after}}})
    if visible_to is not None:
        filters.append(
            {
                "bool": {
                    "minimum_should_match": 1,
                    "should": [
                        {"terms": {"seller_tax_id": sorted(visible_to.tax_ids)}},
                        {"term": {"requester_ids": visible_to.key_id}},
                    ],
                }
            }
        )
    return {"bool": {"filter": filters}}


def _holds_open(doc: Versioned | None, gap_id: str) -> bool:
    """`doc` is the open document of a key whose open gap is `gap_id` or has it as a
    source (a process's gap merged into another's)."""
    return (
        doc is not None
        and doc.source["status"] == str(GapStatus.OPEN)
        and (doc.source["id"] == gap_id or gap_id in live_sources(doc.source["sources"]))
    )


class SharedGapLedger:
    def __init__(
        self,
        local: SqliteGapLedger,
        store: SharedStateStore,
        file: SharedFile,
        *,
        max_attempts: int,
        claim_seconds: float,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = local
        self._store = store
        self._alias = store.layout.gaps
        self._file = file
        self._max_attempts = max_attempts
        self._claim_seconds = claim_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._marks: dict[str, dict[str, Any]] | None = None
        self._down_until = float("-inf")
        self._forwarding = asyncio.Lock()
        #: Set once the local ledger closes: nothing more is sent from it.
        self.closed = False
        self._arrived = False
        self._behind = False
        self._history_sent = False

    def _now(self) -> float:
        return self._clock().timestamp()

    # ---- the GapLedger of the lookups, GET /gaps and the reports --------------------------

    async def record(self, request: GapRequest) -> Gap:
        return await self.local.record(request)

    async def record_id(self, request: GapRequest) -> str:
        return await self.local.record_id(request)

    async def _shared(
        self, read: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        """`read` on the deployment's ledger after sending what waits here; `local` while
        the cluster is down (and for `DOWN_S` after it failed)."""
        if self._monotonic() >= self._down_until:
            try:
                if not self._forwarding.locked():  # else the loop is sending already
                    with contextlib.suppress(TimeoutError):  # a backlog: the loop goes on
                        async with asyncio.timeout(FORWARD_ON_READ_S):
                            await self.forward()
                async with asyncio.timeout(READ_TIMEOUT_S):
                    return await read()
            except _ERRORS as exc:
                self._down_until = self._monotonic() + DOWN_S
                log.warning(
                    "the shared gap ledger did not answer; reading the local one",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
        return await local()

    async def get(self, gap_id: str) -> Gap | None:
        async def read() -> Gap | None:
            resolved = await self._store.mget(self._alias, [gap_id])
            if gap_id in resolved:
                return gap_of(resolved[gap_id].source)
            hits, _ = await self._store.search(
                self._alias, {"term": {"ids": gap_id}}, [{"id": "asc"}], size=2
            )
            found = [gap_of(hit.source) for hit in hits]
            return min(found, key=lambda g: g.status is GapStatus.OPEN, default=None)

        return await self._shared(read, lambda: self.local.get(gap_id))

    async def list(
        self,
        *,
        status: GapStatus | None = None,
        reason: GapReason | None = None,
        since: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        visible_to: Visibility | None = None,
    ) -> builtins.list[Gap]:
        """Oldest first by id, as the local ledger lists."""

        async def read() -> builtins.list[Gap]:
            hits, _ = await self._store.search(
                self._alias,
                _query(
                    status=status, reason=reason, since=since, after=after, visible_to=visible_to
                ),
                [{"id": "asc"}],
                size=limit,
            )
            # A gap being resolved is there twice for a moment (open and resolved): once.
            by_id: dict[str, Gap] = {}
            for gap in map(gap_of, (hit.source for hit in hits)):
                if gap.id not in by_id or gap.status is GapStatus.RESOLVED:
                    by_id[gap.id] = gap
            return builtins.list(by_id.values())

        return await self._shared(
            read,
            lambda: self.local.list(
                status=status,
                reason=reason,
                since=since,
                after=after,
                limit=limit,
                visible_to=visible_to,
            ),
        )

    async def count(self, status: GapStatus) -> int:
        return await self._shared(
            lambda: self._store.count(self._alias, {"term": {"status": str(status)}}),
            lambda: self.local.count(status),
        )

    async def resolve(self, gap_id: str, resolution: str) -> Gap | None:
        gap = await self.get(gap_id)
        if gap is not None:
            await self.resolve_many(
                [Resolution(gap.id, GapOutcome(resolution), {}, gap.lookup_key)]
            )
        return await self.get(gap_id)

    # ---- forwarding ---------------------------------------------------------------------

    async def _local_open(self) -> AsyncIterator[Gap]:
        after: str | None = None
        while page := await self.local.list(status=GapStatus.OPEN, after=after, limit=1000):
            for gap in page:
                yield gap
            after = page[-1].id

    async def forward(self) -> int:
        """Send the local gaps whose asks grew; resolve locally those resolved in the
        deployment since. How many were sent."""
        async with self._forwarding:
            if self.closed:
                return 0
            if self._marks is None:
                self._marks = {k: json.loads(v) for k, v in (await self._file.marks(_KIND)).items()}
            marks = self._marks
            if not self._history_sent:
                await self._send_history(marks)
            sent: dict[str, dict[str, Any]] = {}
            waiting: builtins.list[tuple[Gap, dict[str, Any]]] = []
            try:
                async for gap in self._local_open():
                    mark = marks.get(gap.id)
                    if mark is None or mark["count"] < gap.count:
                        sent[gap.id] = await self._forward_one(gap, mark)
                    else:
                        waiting.append((gap, mark))
            except BaseException:
                self._behind = True  # the cluster failed: what waits is an outage's backlog
                raise
            finally:
                await self._file.set_marks(_KIND, {k: json.dumps(v) for k, v in sent.items()})
                marks.update(sent)
            if sent:
                await self._store.refresh(self._alias)
            self._arrived |= self._behind and bool(sent)
            self._behind = False
            await self._learn_resolved(waiting)
            return len(sent)

    async def _send_history(self, marks: dict[str, dict[str, Any]]) -> None:
        """Once per data directory: the gaps it resolved before its ledger was shared (a
        deployment that had `INVOICE_ES_URL` without the shared ledger), so they are still
        listed and reported. Each is created under its own id, with its outcome and what
        its requesters were sent (one not notified yet is owed its callback, and gets it)."""
        if await self._file.value(_HISTORY) == "sent":
            self._history_sent = True
            return
        after: str | None = None
        while page := await self.local.list(status=GapStatus.RESOLVED, after=after, limit=1000):
            sent: dict[str, dict[str, Any]] = {}
            for gap in page:
                if gap.id in marks:
                    continue
                notified = [
                    {**_DELIVERY, "key_id": r.key_id, "notified_at": r.notified_at}
                    for r in gap.requesters
                ]
                doc = {
                    **new_doc(gap),
                    "status": str(GapStatus.RESOLVED),
                    "resolved_at": gap.resolved_at,
                    "resolution": gap.resolution,
                    "answer": gap.answer,
                    "requesters": notified,
                }
                await self._store.create(
                    self._alias, gap.id, settled(doc, self._max_attempts, self._now())
                )
                sent[gap.id] = {"count": gap.count, "into": gap.id}
            await self._file.set_marks(_KIND, {k: json.dumps(v) for k, v in sent.items()})
            marks.update(sent)
            after = page[-1].id
        await self._file.set_value(_HISTORY, "sent")
        self._history_sent = True

    def arrived(self) -> bool:
        """An outage's backlog of gaps was sent since last asked: the reconciler re-checks
        it at once (this process sends what it recorded meanwhile as fast as the cluster
        takes it, which may be after the reconciler's first run). Gaps sent in the normal
        course (an intake lag) wait for the reconciler's next re-check, as on one file."""
        arrived, self._arrived = self._arrived, False
        return arrived

    async def _forward_one(self, gap: Gap, mark: dict[str, Any] | None) -> dict[str, Any]:
        state = source_state(gap)
        if mark is not None:  # sent before: its gap may have been resolved since
            resolved = await self._store.get(self._alias, mark["into"])
            if resolved is not None:
                await self._fold(resolved, {gap.id: state})
                return {"count": gap.count, "into": mark["into"]}
        open_id = open_doc_id(gap.lookup_key)
        while True:
            # The open document first, then (if it notes this gap as moved) the resolved
            # gap: resolving creates the resolved gap before it closes the open document.
            doc = await self._store.get(self._alias, open_id)
            if doc is None:  # no gap of the key ever: only a create can write it
                fresh = settled(new_doc(gap), self._max_attempts, self._now())
                if await self._store.create(self._alias, open_id, fresh):
                    return {"count": gap.count, "into": gap.id}
                continue
            moved = doc.source["sources"].get(gap.id, {}).get("moved_to")
            if moved is not None:  # sent before (its answer lost) and resolved since
                resolved = await self._store.get(self._alias, moved)
                if resolved is not None:
                    await self._fold(resolved, {gap.id: state})
                    return {"count": gap.count, "into": moved}
            now = self._now()
            if doc.source["status"] == str(GapStatus.OPEN):
                into = doc.source["id"]
                source = {**doc.source, "sources": {**doc.source["sources"], gap.id: state}}
            else:  # closed: this gap is the key's next one
                into = gap.id
                fresh = new_doc(gap)
                source = {
                    **fresh,
                    "sources": {**_moved_notes(doc.source["sources"], now), **fresh["sources"]},
                }
            if await self._store.replace_if(
                self._alias, doc, settled(source, self._max_attempts, now)
            ):
                return {"count": gap.count, "into": into}

    async def _fold(self, doc: Versioned, sources: Mapping[str, Any]) -> None:
        """Add `sources` to the gap `doc` was read as, reading it again until it holds."""
        while True:
            merged = settled(
                {**doc.source, "sources": {**doc.source["sources"], **sources}},
                self._max_attempts,
                self._now(),
            )
            if await self._store.replace_if(self._alias, doc, merged):
                return
            again = await self._store.get(self._alias, doc.id)
            if again is None:
                return
            doc = again

    async def _learn_resolved(self, sent: builtins.list[tuple[Gap, dict[str, Any]]]) -> None:
        if not sent:
            return
        resolved = await self._store.mget(self._alias, {mark["into"] for _, mark in sent})
        outcomes = [
            Resolution(gap.id, GapOutcome(doc.source["resolution"]), doc.source["answer"] or {})
            for gap, mark in sent
            if (doc := resolved.get(mark["into"])) is not None
        ]
        await self.local.resolve_many(outcomes)

    # ---- the reconciler -----------------------------------------------------------------

    async def resolve_many(self, resolutions: Collection[Resolution]) -> int:
        """Resolve each open gap once in the deployment; how many this call resolved.

        What this process recorded is sent first: the reconciler may have read the gaps from
        the local ledger (the cluster failed less than `DOWN_S` ago) or before its forward,
        and a resolution of a gap the shared ledger does not hold yet would be lost (the gap
        forwarded after it, open, with no reconciler run to come). A gap is resolved through
        its key's open gap when that holds it, under its own id or as a source merged into
        another process's gap of the same key (the re-check was of the key)."""
        if resolutions:
            await self.forward()
        done = 0
        for resolution in resolutions:
            done += await self._resolve_one(resolution)
        if resolutions:
            await self._store.refresh(self._alias)
        return done

    async def _resolve_one(self, r: Resolution) -> bool:
        open_doc = await self._store.get(self._alias, open_doc_id(r.lookup_key))
        if not _holds_open(open_doc, r.gap_id):
            return False  # resolved already (a new gap of the key may be open)
        assert open_doc is not None
        gap_id = open_doc.source["id"]
        now = self._now()
        resolved = settled(
            {
                **open_doc.source,
                "status": str(GapStatus.RESOLVED),
                "resolved_at": now,
                "resolution": str(r.outcome),
                "answer": r.answer,
                "sources": live_sources(open_doc.source["sources"]),
            },
            self._max_attempts,
            now,
        )
        mine = await self._store.create(self._alias, gap_id, resolved)
        await self._finish_move(open_doc, gap_id, folded=mine)
        return mine

    async def _finish_move(self, open_doc: Versioned, gap_id: str, *, folded: bool) -> None:
        """Close the open gap as read, its asks (those added meanwhile too) in the resolved
        gap first; `folded`: the resolved gap was made from `open_doc` as read."""
        while True:
            if not folded:  # resolved by an earlier run that did not close it, or changed
                resolved = await self._store.get(self._alias, gap_id)
                if resolved is not None:
                    await self._fold(resolved, live_sources(open_doc.source["sources"]))
            if await self._store.replace_if(
                self._alias, open_doc, closed_doc(open_doc.source, gap_id, self._now())
            ):
                return
            again = await self._store.get(self._alias, open_doc.id)
            if not (_holds_open(again, gap_id) and again and again.source["id"] == gap_id):
                return  # closed by another reconciler (a new gap of the key may be open)
            open_doc, folded = again, False

    async def due_callbacks(
        self, *, max_attempts: int, limit: int = 100
    ) -> builtins.list[DueCallback]:
        now = self._now()

        async def read() -> builtins.list[DueCallback]:
            hits, _ = await self._store.search(
                self._alias,
                {
                    "bool": {
                        "filter": [
                            {"term": {"status": str(GapStatus.RESOLVED)}},
                            {"range": {"due_at": {"lte": now}}},
                        ]
                    }
                },
                [{"due_at": "asc"}, {"id": "asc"}],
                size=limit,
            )
            due: builtins.list[DueCallback] = []
            for doc in (hit.source for hit in hits):
                gap = gap_of(doc)
                due += [
                    DueCallback(
                        gap, r["key_id"], r["callback_url"], r["notify_attempts"], r["gap_id"]
                    )
                    for r in doc["requesters"]
                    if (at := _due(r, doc["resolved_at"], max_attempts)) is not None and at <= now
                ]
            return due[:limit]

        async def nothing() -> builtins.list[DueCallback]:
            return []  # the cluster down: callbacks wait for it

        return await self._shared(read, nothing)

    async def _update_requester(
        self,
        gap_id: str,
        key_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> bool:
        """Apply `change` to the requester of the resolved gap as read, again on a conflict;
        False when `change` declines (None) or the gap or requester is not there."""
        while True:
            doc = await self._store.get(self._alias, gap_id)
            if doc is None:
                return False
            requesters = doc.source["requesters"]
            found = [r for r in requesters if r["key_id"] == key_id]
            changed = change(dict(found[0])) if found else None
            if changed is None:
                return False
            source = {
                **doc.source,
                "requesters": [changed if r["key_id"] == key_id else r for r in requesters],
            }
            if await self._store.replace_if(
                self._alias, doc, settled(source, self._max_attempts, self._now())
            ):
                return True

    async def claim_callback(self, gap_id: str, key_id: str) -> bool:
        now, node = self._now(), self._file.node

        def claim(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["notified_at"] is not None or (r["claimed_until"] or 0.0) > now:
                return None  # sent, or being sent by someone else
            return {**r, "claimed_by": node, "claimed_until": now + self._claim_seconds}

        return await self._update_requester(gap_id, key_id, claim)

    async def callback_sent(self, gap_id: str, key_id: str) -> None:
        now = self._now()
        await self._update_requester(
            gap_id,
            key_id,
            lambda r: {
                **r,
                "notified_at": now,
                "notify_attempts": r["notify_attempts"] + 1,
                "notify_error": None,
                "claimed_by": None,
                "claimed_until": None,
            },
        )

    async def callback_failed(
        self, gap_id: str, key_id: str, error: str, next_attempt: datetime
    ) -> None:
        await self._update_requester(
            gap_id,
            key_id,
            lambda r: {
                **r,
                "notify_attempts": r["notify_attempts"] + 1,
                "notify_error": error[:500],
                "next_notify_at": next_attempt.timestamp(),
                "claimed_by": None,
                "claimed_until": None,
            },
        )
