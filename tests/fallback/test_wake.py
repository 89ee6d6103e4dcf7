"""`fallback.wake.wait_event`: a background loop waiting on it always ends when cancelled,
whatever moment the cancellation hits, and a cancellation swallowed inside a round is
honoured at the next wait (the watch delivery's loop hung a service's stop without it)."""

from __future__ import annotations

import asyncio
import contextlib

from fallback.wake import wait_event


async def test_set_or_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 3600) is True


async def test_a_loop_stops_whenever_it_is_cancelled() -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 0.001)
            event.clear()

    for n in range(200):  # cancellations at every phase: waiting, timing out, woken
        task = asyncio.create_task(loop())
        for _ in range(n % 7):
            await asyncio.sleep(0)
        if n % 3 == 0:
            event.set()
        task.cancel()
        async with asyncio.timeout(10):  # a liveness bound: a swallowed stop never ends
            await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()


async def test_a_cancellation_swallowed_in_a_round_is_honoured_at_the_next_wait() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            with contextlib.suppress(asyncio.CancelledError):  # a round that swallows it
                await asyncio.sleep(3600)
            await wait_event(event, 3600)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(10):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert rounds == 1
