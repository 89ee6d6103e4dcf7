"""The watches' callbacks: each event of a watch with a `callback_url` is POSTed there,
signed, through the gap callbacks' machinery (`fallback.callbacks.callback_session` and
`post_callback`: HMAC `X-Invoice-Signature`, no private addresses unless allowed, no
redirects), at least once: retried with the same backoff (`backoff_base` x 2^attempts, at
most `backoff_cap`) up to `max_attempts`, the last error kept with the event. Receivers
treat the event's `id` as the idempotency key (a crash between the POST and recording it
sends it again).

`run_forever` sends what is due whenever the fan-out recorded events, and every `interval`
seconds for the retries; `claim` keeps two processes sharing the file from sending one event
at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
import orjson

from fallback.callbacks import CallbackPolicy, Delivery, callback_session, post_callback
from fallback.wake import wait_event
from verify.watches.events import WatchHook, WatchStore
from verify.watches.model import WatchEvent

log = logging.getLogger("verify.watches.delivery")
#: Events kept (the feed and their callbacks' state) after they were recorded.
KEEP_EVENTS_S = 90 * 86_400.0
_PRUNE_EVERY_S = 3_600.0


class WatchDelivery:
    def __init__(self, store: WatchStore, policy: CallbackPolicy, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock

    def next_delay(self, attempts: int) -> float:
        """After the `attempts`-th failed attempt (1 for the first), as the gap callbacks."""
        p = self.policy
        return min(p.backoff_cap, p.backoff_base * 2.0 ** (attempts - 1))

    async def deliver_due(self) -> Delivery:
        """Every callback due now, each attempted once in this call."""
        done = Delivery()
        seen: set[int] = set()
        p = self.policy
        limit = asyncio.Semaphore(p.concurrency)
        async with callback_session(p) as session:
            while True:
                due = [d for d in await self.store.due(
                    now=self.clock(), max_attempts=p.max_attempts) if d[0].seq not in seen]
                if not due:
                    return done
                seen.update(event.seq for event, _, _ in due)
                results = await asyncio.gather(*(self._one(session, limit, *d) for d in due))
                done.sent += sum(r is True for r in results)
                done.failed += sum(r is False for r in results)

    async def _one(self, session: aiohttp.ClientSession, limit: asyncio.Semaphore,
                   event: WatchEvent, url: str, attempts: int) -> bool | None:
        async with limit:
            now = self.clock()
            if not await self.store.claim(event, now=now,
                                          until=now + self.policy.timeout + 5):
                return None
            error = await post_callback(session, self.policy, url,
                                        orjson.dumps(event.as_dict()))
            if error is None:
                await self.store.sent(event, now=self.clock())
                return True
            log.warning("watch callback failed", extra={
                "event_id": event.id, "attempt": attempts + 1, "error": error})
            await self.store.failed(event, error,
                                    next_at=self.clock() + self.next_delay(attempts + 1))
            return False

    async def run_forever(self, hook: WatchHook, *, interval: float) -> None:
        last_prune = float("-inf")
        while True:
            await wait_event(hook.recorded_any, interval)
            hook.recorded_any.clear()
            try:
                await self.deliver_due()
                if time.monotonic() - last_prune >= _PRUNE_EVERY_S:
                    await self.store.prune(now=self.clock(), keep_events_s=KEEP_EVENTS_S)
                    last_prune = time.monotonic()
            except Exception:  # the next round retries
                log.exception("watch callbacks: a delivery round failed")
