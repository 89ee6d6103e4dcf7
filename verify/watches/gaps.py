"""The reconciler's gap ledger with the watches told of every gap it resolves
(`WatchedGaps`, wired in `verify.services`): the ledger is the reconciler's, and stays as it
is (this file's or the deployment's); only `resolve_many` is watched."""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import datetime

from fallback.gaps import (
    DueCallback,
    Gap,
    GapReason,
    GapRequest,
    GapStatus,
    ReconcileLedger,
    Resolution,
    Visibility,
)
from verify.watches.events import WatchHook
from verify.watches.model import gap_change


class WatchedGaps:
    """A `ReconcileLedger` over `inner`: resolved gaps become the events of the watches of
    their lookup key (and of the invoice found). A resolution recorded twice (two
    reconcilers) is one event: it is named by the gap's id."""

    def __init__(self, inner: ReconcileLedger, hook: WatchHook) -> None:
        self.inner = inner
        self.hook = hook

    async def resolve_many(self, resolutions: Collection[Resolution]) -> int:
        done = await self.inner.resolve_many(resolutions)
        found = [gap_change(r.gap_id, r.lookup_key, str(r.outcome), r.answer)
                 for r in resolutions if r.lookup_key]
        if found:
            await self.hook.record(found)
        return done

    async def record(self, request: GapRequest) -> Gap:
        return await self.inner.record(request)

    async def record_id(self, request: GapRequest) -> str:
        return await self.inner.record_id(request)

    async def get(self, gap_id: str) -> Gap | None:
        return await self.inner.get(gap_id)

    async def list(self, *, status: GapStatus | None = None, reason: GapReason | None = None,
                   since: datetime | None = None, after: str | None = None,
                   limit: int = 100, visible_to: Visibility | None = None) -> builtins.list[Gap]:
        return await self.inner.list(status=status, reason=reason, since=since, after=after,
                                     limit=limit, visible_to=visible_to)

    async def resolve(self, gap_id: str, resolution: str) -> Gap | None:
        return await self.inner.resolve(gap_id, resolution)

    async def count(self, status: GapStatus) -> int:
        return await self.inner.count(status)

    def arrived(self) -> bool:
        return self.inner.arrived()

    async def due_callbacks(self, *, max_attempts: int,
                            limit: int = 100) -> builtins.list[DueCallback]:
        return await self.inner.due_callbacks(max_attempts=max_attempts, limit=limit)

    async def claim_callback(self, gap_id: str, key_id: str) -> bool:
        return await self.inner.claim_callback(gap_id, key_id)

    async def callback_sent(self, gap_id: str, key_id: str) -> None:
        await self.inner.callback_sent(gap_id, key_id)

    async def callback_failed(self, gap_id: str, key_id: str, error: str,
                              next_attempt: datetime) -> None:
        await self.inner.callback_failed(gap_id, key_id, error, next_attempt)
