"""Coalescing concurrent one-key calls into batches: order, results, failures, give-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from fallback.coalesce import Coalescer

#: Bounds every batch of these tests; reaching it fails the test instead of hanging it.
HANG_GUARD_S = 10


class Backend:
    """Answers each key with its upper case; records every batch it was sent; can be held
    (a round trip in flight) or told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def run(self, keys: Sequence[str]) -> list[str]:
        self.batches.append(list(keys))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [key.upper() for key in keys]


def held() -> tuple[Backend, Coalescer[str, str]]:
    """A coalescer whose backend holds every batch until `release` is set."""
    backend = Backend()
    backend.release.clear()
    return backend, Coalescer(backend.run, timeout=HANG_GUARD_S)


async def sent(coalescer: Coalescer[str, str], key: str) -> asyncio.Task[str]:
    """A call whose batch has gone out to the backend."""
    task = asyncio.create_task(coalescer.call(key))
    await asyncio.sleep(0)  # the call queues its key and starts the flusher
    await asyncio.sleep(0)  # the flusher waits one more turn for company
    await asyncio.sleep(0)  # the flusher sends the batch
    return task


async def test_a_lone_call_is_a_batch_of_one() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.run, timeout=HANG_GUARD_S)
    assert await coalescer.call("a") == "A"
    assert backend.batches == [["a"]]


async def test_calls_made_together_share_one_batch_in_call_order() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.run, timeout=HANG_GUARD_S)
    results = await asyncio.gather(*(coalescer.call(k) for k in ["x", "y", "x", "z"]))
    assert results == ["X", "Y", "X", "Z"]
    assert backend.batches == [["x", "y", "x", "z"]]


async def test_a_call_made_one_loop_turn_later_still_joins_the_first_batch() -> None:
    """Under load, requests read from the sockets in the next turn share the round trip."""
    backend = Backend()
    coalescer = Coalescer(backend.run, timeout=HANG_GUARD_S)
    first = asyncio.create_task(coalescer.call("a"))
    await asyncio.sleep(0)  # "a" queued, the flusher started
    second = asyncio.create_task(coalescer.call("b"))
    assert [await first, await second] == ["A", "B"]
    assert backend.batches == [["a", "b"]]


async def test_calls_queued_behind_a_batch_in_flight_go_in_the_next() -> None:
    backend, coalescer = held()
    first = await sent(coalescer, "a")
    assert backend.batches == [["a"]]  # in flight
    later = [asyncio.create_task(coalescer.call(k)) for k in ("b", "c")]
    await asyncio.sleep(0)
    backend.release.set()
    assert await first == "A"
    assert [await task for task in later] == ["B", "C"]
    assert backend.batches == [["a"], ["b", "c"]]


async def test_batches_are_bounded() -> None:
    backend = Backend()
    coalescer = Coalescer(backend.run, timeout=HANG_GUARD_S, max_batch=2)
    results = await asyncio.gather(*(coalescer.call(k) for k in "abcde"))
    assert results == list("ABCDE")
    assert backend.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_works() -> None:
    backend = Backend()
    backend.fail = ConnectionError("down")
    coalescer = Coalescer(backend.run, timeout=HANG_GUARD_S)
    outcomes = await asyncio.gather(coalescer.call("a"), coalescer.call("b"),
                                    return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]
    backend.fail = None
    assert await coalescer.call("c") == "C"


async def test_a_wrong_number_of_results_is_a_failure_not_a_mismatch() -> None:
    async def short(keys: Sequence[str]) -> list[str]:
        return ["only one"]

    coalescer = Coalescer(short, timeout=HANG_GUARD_S)
    with pytest.raises(RuntimeError, match="answered 1"):
        await asyncio.gather(coalescer.call("a"), coalescer.call("b"))


async def test_a_caller_that_gives_up_leaves_the_batch_to_the_others() -> None:
    backend, coalescer = held()
    impatient = asyncio.create_task(coalescer.call("a"))
    patient = await sent(coalescer, "b")
    impatient.cancel()
    backend.release.set()
    assert await patient == "B"
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_aclose_cancels_what_is_in_flight_and_queued() -> None:
    _, coalescer = held()
    in_flight = await sent(coalescer, "a")
    queued = asyncio.create_task(coalescer.call("b"))
    await asyncio.sleep(0)
    await coalescer.aclose()
    for task in (in_flight, queued):
        with pytest.raises(asyncio.CancelledError):
            await task


def test_max_batch_must_be_positive() -> None:
    async def run(keys: Sequence[str]) -> list[str]:
        return list(keys)

    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(run, timeout=1, max_batch=0)
    with pytest.raises(ValueError, match="timeout"):
        Coalescer(run, timeout=0)


async def test_a_stalled_batch_fails_its_callers_and_those_queued_behind_it() -> None:
    backend = Backend()
    backend.release.clear()  # never answers
    coalescer = Coalescer(backend.run, timeout=0.05)
    async with asyncio.timeout(HANG_GUARD_S):
        first = await sent(coalescer, "a")
        queued = asyncio.create_task(coalescer.call("b"))
        outcomes = await asyncio.gather(first, queued, return_exceptions=True)
    assert [type(o) for o in outcomes] == [TimeoutError, TimeoutError]
    assert backend.batches == [["a"]]  # "b" never went out: it failed with the stall
    backend.release.set()
    assert await coalescer.call("c") == "C"
