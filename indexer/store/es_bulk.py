"""Bulk writes through `helpers.async_streaming_bulk`, with every item's outcome kept.

The helper is run with `raise_on_error=False` and `yield_ok=True`: each item comes back as
written (with the concrete index, `_seq_no` and `_primary_term` it landed with, which is what
an exact undo needs) or failed (status and reason). Nothing is swallowed: callers turn
failures into typed errors (`BulkWriteError` lists the ids). A transport failure mid-stream
still raises, and `BulkOutcome` then holds whatever had been confirmed before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk

#: Chunks small enough that one slow request cannot hold an intake for long.
CHUNK_ITEMS = 500
CHUNK_BYTES = 10 * 1024 * 1024
#: Only 429 (queue full) is retried by the helper: the item was refused, so a retry is safe.
RETRIES_ON_429 = 3


@dataclass(frozen=True, slots=True)
class Written:
    index: str  # the concrete index, not the alias
    doc_id: str
    seq_no: int
    primary_term: int


@dataclass(frozen=True, slots=True)
class BulkFailure:
    op: str
    index: str
    doc_id: str
    status: int
    error_type: str
    reason: str


@dataclass(slots=True)
class BulkOutcome:
    written: list[Written] = field(default_factory=list)
    failed: list[BulkFailure] = field(default_factory=list)


class BulkWriteError(Exception):
    """Some items of a bulk write failed for a reason other than the one the caller expects."""

    def __init__(self, failures: Sequence[BulkFailure]) -> None:
        self.failures = tuple(failures)
        shown = ", ".join(f"{f.index}/{f.doc_id}: {f.status} {f.error_type}"
                          for f in self.failures[:20])
        more = f" and {len(self.failures) - 20} more" if len(self.failures) > 20 else ""
        super().__init__(f"{len(self.failures)} bulk item(s) failed: {shown}{more}")

    @property
    def ids(self) -> list[str]:
        return [f.doc_id for f in self.failures]


def _failure(op: str, info: dict[str, Any]) -> BulkFailure:
    error = info.get("error")
    if isinstance(error, dict):
        error_type, reason = str(error.get("type", "")), str(error.get("reason", ""))
    else:
        error_type, reason = "", str(error or "")
    return BulkFailure(op, str(info.get("_index", "")), str(info.get("_id", "")),
                       int(info.get("status", 500)), error_type, reason)


async def run_bulk(client: AsyncElasticsearch, actions: list[dict[str, Any]],
                   outcome: BulkOutcome, *, ignore_status: tuple[int, ...] = ()) -> None:
    """Send `actions`, recording each item in `outcome` as it is confirmed.

    `outcome` is filled in place so that, if the transport fails half-way, the caller still
    knows what landed. Items answered with a status in `ignore_status` count as neither.
    """
    if not actions:
        return
    async for ok, item in async_streaming_bulk(
            client, actions, chunk_size=CHUNK_ITEMS, max_chunk_bytes=CHUNK_BYTES,
            raise_on_error=False, raise_on_exception=True, max_retries=RETRIES_ON_429,
            initial_backoff=0.5, max_backoff=5, yield_ok=True):
        ((op, info),) = item.items()
        if ok:
            outcome.written.append(Written(str(info["_index"]), str(info["_id"]),
                                           int(info["_seq_no"]), int(info["_primary_term"])))
        elif int(info.get("status", 500)) not in ignore_status:
            outcome.failed.append(_failure(op, info))
