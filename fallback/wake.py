"""Waiting in a background loop for an `asyncio.Event` or a number of seconds, whichever
comes first, in a task that its owner may cancel at any moment (`cleanup_ctx` stops).

Not `with suppress(TimeoutError): async with asyncio.timeout(s): await event.wait()`: on
Python 3.11 a stop's cancellation could end up swallowed there (the task went on looping
in the `cancelling` state, so the stop that cancelled it and then gathered it waited for
ever; seen in the watch delivery's loop, tests/verify/test_watches.py hung in teardown).
`asyncio.wait` with a timeout never cancels its caller, so a stop's cancellation is the
only `CancelledError` such a loop sees, and one requested but swallowed somewhere inside
the loop's round is honoured at the next wait."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set, waiting for it at most `seconds`. Raises `CancelledError`
    when the calling task has been asked to stop (now, or earlier without it ending)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=seconds)
    finally:
        waiter.cancel()
    return event.is_set()
