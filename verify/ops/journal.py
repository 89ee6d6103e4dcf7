"""The intake journal for operators (docs/journal.md): list entries by state, put a
quarantined entry back in the queue after fixing its cause, or drop it. Admin only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from indexer.journal import EntryState, IntakeJournal
from verify.access.middleware import PRINCIPAL
from verify.http.errors import ApiError
from verify.http.params import Query, read_query
from verify.http.responses import json_response
from verify.keys import ACCESS, JOURNALED_INTAKE

#: The largest page `GET /journal` answers.
MAX_LIMIT = 1000
_MAX_SEQ = 10**18 - 1


def _journal(request: web.Request) -> IntakeJournal:
    return request.app[JOURNALED_INTAKE].journal


def _seq(request: web.Request) -> int:
    """The path's sequence number, read as a query parameter is (`verify.http.params`)."""
    return Query({"seq": request.match_info["seq"]}).integer("seq", low=1, high=_MAX_SEQ,
                                                             default=0)


async def list_entries(request: web.Request) -> web.Response:
    """`?state=quarantined|pending|applied` (default quarantined), `after` a sequence number,
    `limit` up to `MAX_LIMIT`: entries in journal order, without their bodies."""
    q = read_query(request.query, ("state", "after", "limit"))  # unknown, repeated: 400
    state = q.choice("state", EntryState) or EntryState.QUARANTINED
    after = q.integer("after", default=0, low=0, high=_MAX_SEQ)
    limit = q.integer("limit", default=100, low=1, high=MAX_LIMIT)
    journal = _journal(request)
    entries = await journal.entries(state, after=after, limit=limit)
    body: dict[str, Any] = {
        "state": str(state), "counts": await journal.counts(),
        "entries": [e.summary() for e in entries],
        "next_after": entries[-1].seq if len(entries) == limit else None}
    return json_response(body)


async def retry_entry(request: web.Request) -> web.Response:
    """A quarantined entry back to pending (attempts reset); the reconciler's next run
    applies it, in its place in the journal's order."""
    seq = _seq(request)
    if not await _journal(request).retry(seq):
        raise ApiError(404, "entry_not_quarantined", "no quarantined journal entry has this "
                       "sequence number", {"seq": seq})
    _audit(request, "journal.retry", seq)
    return json_response({"seq": seq, "state": str(EntryState.PENDING)})


async def drop_entry(request: web.Request) -> web.Response:
    """Delete a quarantined entry: its package is given up (its sender may post it again
    under the same id)."""
    seq = _seq(request)
    if not await _journal(request).drop(seq):
        raise ApiError(404, "entry_not_quarantined", "no quarantined journal entry has this "
                       "sequence number", {"seq": seq})
    _audit(request, "journal.drop", seq)
    return json_response({"seq": seq, "dropped": True})


def _audit(request: web.Request, action: str, seq: int) -> None:
    request.app[ACCESS].audit.record(request[PRINCIPAL], action, str(seq), "ok",
                                     request.remote)
