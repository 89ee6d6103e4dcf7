"""Callbacks to requesters of resolved gaps, delivered at least once, with retries.

A requester that left a `callback_url` on an unconfirmed lookup gets one POST when its gap
is resolved:

    {"event": "gap.resolved", "gap_id": "gap_...", "lookup_key": "vn:...", "key": {...},
     "resolution": "found" | "missing", "status": "valid" | ... | "not_found",
     "resolved_at": "2026-11-23T02:40:00Z"}

The body names the final status, not the invoice: the requester asks again (a normal
lookup, under its own key's tenancy and limits) for the full answer. Any 2xx is delivery.
Anything else (a refused connection, a timeout, a 5xx, a redirect: redirects are not
followed) is retried with exponential backoff (`backoff_base` x 2^attempts, at most
`backoff_cap`) on later reconciler runs, up to `max_attempts`; the last error stays with the
requester (`GET /gaps/{id}` shows it to admins). A crash between the POST and recording it
sends it again: receivers should treat `gap_id` as the idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp

from fallback.breaker import Clock, utc_now
from fallback.gaps import DueCallback, SqliteGapLedger

log = logging.getLogger("fallback.callbacks")


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    timeout: float = 5.0
    max_attempts: int = 8
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    concurrency: int = 8


@dataclass(slots=True)
class Delivery:
    sent: int = 0
    failed: int = 0


def payload(due: DueCallback) -> dict[str, Any]:
    gap = due.gap.as_dict(requesters=())
    return {"event": "gap.resolved", "gap_id": gap["id"], "lookup_key": gap["lookup_key"],
            "key": gap["key"], "resolution": gap["resolution"],
            "status": (due.gap.answer or {}).get("status"), "resolved_at": gap["resolved_at"]}


class CallbackNotifier:
    def __init__(self, gaps: SqliteGapLedger, policy: CallbackPolicy | None = None, *,
                 clock: Clock = utc_now) -> None:
        self.gaps = gaps
        self.policy = policy or CallbackPolicy()
        self._clock = clock

    def next_attempt_delay(self, attempts: int) -> timedelta:
        """After the `attempts`-th failed attempt (1 for the first)."""
        p = self.policy
        return timedelta(seconds=min(p.backoff_cap, p.backoff_base * 2 ** (attempts - 1)))

    async def deliver_due(self) -> Delivery:
        """Every callback due now, each attempted once in this call."""
        done = Delivery()
        p = self.policy
        limit = asyncio.Semaphore(p.concurrency)
        timeout = aiohttp.ClientTimeout(total=p.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                due = await self.gaps.due_callbacks(max_attempts=p.max_attempts, limit=100)
                if not due:
                    return done
                results = await asyncio.gather(*(self._one(session, limit, d) for d in due))
                done.sent += sum(results)
                done.failed += len(results) - sum(results)

    async def _one(self, session: aiohttp.ClientSession, limit: asyncio.Semaphore,
                   due: DueCallback) -> bool:
        async with limit:
            error: str | None = None
            try:
                async with session.post(due.callback_url, json=payload(due),
                                        allow_redirects=False) as response:
                    if not 200 <= response.status < 300:
                        error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                await self.gaps.callback_sent(due.gap.id, due.key_id)
                return True
            attempts = due.attempts + 1
            log.warning("gap callback failed", extra={
                "gap_id": due.gap.id, "attempt": attempts, "error": error})
            await self.gaps.callback_failed(due.gap.id, due.key_id, error,
                                            self._clock() + self.next_attempt_delay(attempts))
            return False
