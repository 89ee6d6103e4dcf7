"""Wait for a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def poll(check: Callable[[], bool | Awaitable[bool]], within: float, what: str, *,
               interval: float = 0.05, detail: Callable[[], str] | None = None) -> None:
    """Until `check()` is true; AssertionError naming `what` (and `detail()`) after
    `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{extra}")
        await asyncio.sleep(interval)
