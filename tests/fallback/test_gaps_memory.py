"""Repeated asks answered from the ledger's memory of a gap on disk
(docs/outages.md#misses-under-load): a requester asking again about a key whose open gap a
commit found within the moment gets its id at once, its ask counted in the next batch; a
first ask of a requester or one with a callback URL waits for its commit; a gap resolved is
not handed out again, and a late ask of a gap resolved meanwhile opens nothing (it is
dropped)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fallback.gaps
from fallback.gaps import GapOutcome, GapRequest, GapStatus, Resolution, open_gap_ledger
from tests.fallback.test_gaps import VN_ID, vn_request


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gaps_on_disk(path: Path) -> list[tuple[str, str, int]]:
    """(id, status, count) of every gap in the file, read on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return [(str(i), str(s), int(c)) for i, s, c in conn.execute(
            "SELECT id, status, count FROM gaps ORDER BY id")]
    finally:
        conn.close()


def resolve_elsewhere(path: Path, gap_id: str) -> None:
    """Another process on the file resolves the gap (a connection of its own)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("UPDATE gaps SET status = 'resolved', resolution = 'found' "
                      "WHERE id = ?", (gap_id,))
    finally:
        other.close()


async def test_a_repeated_ask_is_answered_at_once_and_counted_in_the_next_batch(
        tmp_path: Path) -> None:
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        assert ledger.batches == 1
        again = await ledger.record_id(vn_request())
        assert again == gap_id
        # answered before any write: the ask is not on disk yet
        assert (ledger.batches, ledger.early) == (1, 1)
        assert gaps_on_disk(path) == [(gap_id, "open", 1)]
        await ledger.drain()
        assert ledger.batches == 2
        gap = await ledger.get(gap_id)
    assert gap is not None
    assert gap.count == 2
    assert [(r.key_id, r.count) for r in gap.requesters] == [("key_a", 2)]


async def test_a_new_requester_and_a_callback_wait_for_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request("key_a"))
        assert await ledger.record_id(vn_request("key_a")) == gap_id  # from memory
        assert ledger.early == 1
        batches = ledger.batches
        # a requester the gap has no row of: its row is on disk when it is answered
        assert await ledger.record_id(vn_request("key_b")) == gap_id
        assert ledger.batches > batches
        gap = await ledger.get(gap_id)
        assert gap is not None
        assert "key_b" in {r.key_id for r in gap.requesters}
        # an ask leaving a callback URL: on disk when answered too
        batches = ledger.batches
        url = "https://a.example/cb"
        assert await ledger.record_id(vn_request("key_b", callback_url=url)) == gap_id
        assert ledger.batches > batches
        gap = await ledger.get(gap_id)
        assert gap is not None
        assert {r.key_id: r.callback_url for r in gap.requesters}["key_b"] == url
        assert ledger.early == 1
    assert gaps_on_disk(path) == [(gap_id, "open", 4)]


async def test_a_gap_resolved_here_is_not_handed_out_again(tmp_path: Path) -> None:
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        assert await ledger.record_id(vn_request()) == gap_id
        assert ledger.early == 1
        await ledger.drain()
        await ledger.resolve_many([Resolution(gap_id, GapOutcome.MISSING, {}, VN_ID)])
        batches = ledger.batches
        after = await ledger.record_id(vn_request())
        assert after != gap_id
        assert ledger.batches > batches  # waited for its commit: a new gap
        assert ledger.early == 1
    assert sorted(gaps_on_disk(path)) == sorted([(gap_id, "resolved", 2), (after, "open", 1)])


async def test_a_late_ask_of_a_gap_resolved_meanwhile_opens_nothing(tmp_path: Path) -> None:
    """Another process on the file resolves the gap within the moment: the repeated ask is
    answered with the gap it knew, and that ask is dropped, not counted in a new gap nobody
    holds the id of; the memory of the gap goes with it."""
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        resolve_elsewhere(path, gap_id)
        assert await ledger.record_id(vn_request()) == gap_id
        await ledger.drain()
        assert (ledger.early, ledger.late_dropped) == (1, 1)
        assert gaps_on_disk(path) == [(gap_id, "resolved", 1)]
        assert await ledger.count(GapStatus.OPEN) == 0
        batches = ledger.batches
        after = await ledger.record_id(vn_request())  # forgotten: waits, a new gap
        assert after != gap_id
        assert ledger.batches > batches
    assert sorted(gaps_on_disk(path)) == sorted([(gap_id, "resolved", 1), (after, "open", 1)])


async def test_the_memory_ends_after_the_moment(tmp_path: Path) -> None:
    """The moment alone (`quiet_s=0`): no batch of other keys keeps it on either."""
    ticks = Ticks()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", moment_s=1.0, quiet_s=0,
                               monotonic=ticks) as ledger:
        gap_id = await ledger.record_id(vn_request())
        ticks.now += 0.5
        assert await ledger.record_id(vn_request()) == gap_id
        assert ledger.early == 1
        await ledger.drain()  # the late ask's commit finds the gap open again: a moment more
        ticks.now += 0.9
        assert await ledger.record_id(vn_request()) == gap_id
        assert ledger.early == 2
        await ledger.drain()
        ticks.now += 1.0
        batches = ledger.batches
        assert await ledger.record_id(vn_request()) == gap_id
        assert (ledger.early, ledger.batches) == (2, batches + 1)


def other_key(requester: str = "key_a") -> GapRequest:
    return vn_request(requester, lookup_key="vn:0100109106:1C26TAA:99", key={"number": "99"})


async def test_a_file_nobody_else_writes_keeps_the_memory_past_the_moment(
        tmp_path: Path) -> None:
    """Batches of other keys keep finding the file written by this process alone: a gap
    found open minutes ago is still open (only this process could have closed it, and it
    forgets what it resolves), so a repeated ask is answered from memory."""
    ticks = Ticks()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", moment_s=1.0, quiet_s=600,
                               monotonic=ticks) as ledger:
        gap_id = await ledger.record_id(vn_request())
        for _ in range(3):  # a stream of other misses, a batch each, minutes on
            ticks.now += 60
            await ledger.record_id(other_key(f"key_{ticks.now:.0f}"))
        ticks.now += 0.5  # the last batch within the moment
        batches = ledger.batches
        assert await ledger.record_id(vn_request()) == gap_id
        assert (ledger.early, ledger.batches) == (1, batches)
        # the quiet has its limit: past `quiet_s` after the commit that found it open
        ticks.now += 600
        await ledger.record_id(other_key("key_late"))
        batches = ledger.batches
        assert await ledger.record_id(vn_request()) == gap_id
        assert (ledger.early, ledger.batches) == (1, batches + 1)


async def test_no_memory_past_the_moment_without_a_recent_batch(tmp_path: Path) -> None:
    """Nothing was written for a while: whether another process wrote the file is not
    known, so the ask waits for its commit (which looks)."""
    ticks = Ticks()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", moment_s=1.0, quiet_s=600,
                               monotonic=ticks) as ledger:
        gap_id = await ledger.record_id(vn_request())
        ticks.now += 5
        batches = ledger.batches
        assert await ledger.record_id(vn_request()) == gap_id
        assert (ledger.early, ledger.batches) == (0, batches + 1)


async def test_another_connection_writing_the_file_ends_the_quiet(tmp_path: Path) -> None:
    """Another process resolves the gap past the moment: the next batch sees the file
    changed, and the memory answers within the moment of a commit only, so the resolved
    gap is not handed out; a new one is opened for the ask."""
    ticks = Ticks()
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, moment_s=1.0, quiet_s=600, monotonic=ticks) as ledger:
        gap_id = await ledger.record_id(vn_request())
        ticks.now += 30
        resolve_elsewhere(path, gap_id)
        await ledger.record_id(other_key("key_b"))  # a batch: it reads data_version
        ticks.now += 0.5
        batches = ledger.batches
        after = await ledger.record_id(vn_request())
        assert after != gap_id
        assert (ledger.early, ledger.batches) == (0, batches + 1)
    assert (gap_id, "resolved", 1) in gaps_on_disk(path)
    assert (after, "open", 1) in gaps_on_disk(path)


class CommitThen:
    """The batch writer's own SQLite connection, with `then` run once right after its next
    COMMIT: another process's commit landing at that instant."""

    def __init__(self, conn: sqlite3.Connection, then: Callable[[], None]) -> None:
        self._conn = conn
        self._then: Callable[[], None] | None = then

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._conn.execute(sql, *args)
        if sql == "COMMIT" and self._then is not None:
            then, self._then = self._then, None
            then()
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_a_resolution_right_after_a_batch_commits_is_seen_by_the_next(
        tmp_path: Path) -> None:
    """The batch's `data_version` is read under its write lock: a resolution committed by
    another process just after the batch's COMMIT is a change for the next batch, so the
    resolved gap is not handed out past the moment."""
    ticks = Ticks()
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, moment_s=1.0, quiet_s=600, monotonic=ticks) as ledger:
        gap_id = await ledger.record_id(vn_request())
        writer = ledger._batches
        writer._conn = CommitThen(  # type: ignore[assignment]
            writer._connection(), lambda: resolve_elsewhere(path, gap_id))
        assert await ledger.record_id(vn_request("key_b")) == gap_id  # counted, then closed
        for _ in range(3):  # minutes of other misses, a batch each
            ticks.now += 60
            await ledger.record_id(other_key(f"key_{ticks.now:.0f}"))
        ticks.now += 0.5
        after = await ledger.record_id(vn_request())
        assert after != gap_id
        assert ledger.early == 0
    assert (gap_id, "resolved", 2) in gaps_on_disk(path)


async def test_the_memory_keeps_at_most_its_bound(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fallback.gaps, "MAX_REMEMBERED", 10)
    ticks = Ticks()
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", moment_s=1.0, quiet_s=600,
                               monotonic=ticks) as ledger:
        ids = []
        for n in range(25):
            ticks.now += 0.01
            ids.append(await ledger.record_id(vn_request(
                lookup_key=f"vn:0100109106:1C26TAA:{n}", key={"number": str(n)})))
            assert len(ledger._on_disk) <= 11
        batches = ledger.batches
        assert await ledger.record_id(vn_request(  # the newest is still remembered
            lookup_key="vn:0100109106:1C26TAA:24", key={"number": "24"})) == ids[-1]
        assert ledger.batches == batches


async def test_repeated_asks_are_written_by_themselves_when_no_commit_is_due(
        tmp_path: Path) -> None:
    """No drain, no other ask: the late asks' own batch is written after `late_flush_s`."""
    path = tmp_path / "gaps.sqlite3"
    async with open_gap_ledger(path, monotonic=Ticks(), late_flush_s=0.0) as ledger:
        gap_id = await ledger.record_id(vn_request())
        for _ in range(3):
            assert await ledger.record_id(vn_request()) == gap_id
        assert ledger.batches == 1
        for _ in range(500):  # polled, not timed: the flush is due at once
            if ledger.batches == 2:
                break
            await asyncio.sleep(0.01)
        assert ledger.batches == 2
        assert gaps_on_disk(path) == [(gap_id, "open", 4)]


async def test_a_read_of_the_ledger_sees_the_asks_answered_from_memory(
        tmp_path: Path) -> None:
    """GET /gaps right after the answers: the counts they were given are in it."""
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        for _ in range(2):
            assert await ledger.record_id(vn_request()) == gap_id
        assert ledger.batches == 1
        (listed,) = await ledger.list()
        assert listed.count == 3
        assert await ledger.record_id(vn_request()) == gap_id
        gap = await ledger.get(gap_id)
        assert gap is not None
        assert (gap.count, gap.requesters[0].count) == (4, 4)
        assert await ledger.count(GapStatus.OPEN) == 1


class Stream:
    """First asks of new requesters, one per loop turn while it runs (misses of an outage,
    everyone retrying): the writer always finds asks queued when a batch is committed."""

    def __init__(self) -> None:
        self.asks: list[asyncio.Task[str]] = []
        self.running = True

    async def run(self, ledger: object) -> None:
        from fallback.gaps import SqliteGapLedger
        assert isinstance(ledger, SqliteGapLedger)
        while self.running:
            self.asks.append(asyncio.create_task(
                ledger.record_id(vn_request(f"key_{len(self.asks)}"))))
            await asyncio.sleep(0)


async def test_a_read_under_a_stream_of_misses_waits_for_its_asks_not_the_stream(
        tmp_path: Path) -> None:
    """A read waits for the batch that writes the repeated asks answered before it, not for
    the writer to run out of work: under a steady stream of first asks it never does, and
    GET /gaps, /metrics' gap counts and the reconciler's check would wait with it."""
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        assert await ledger.record_id(vn_request()) == gap_id  # from memory
        stream = Stream()
        producer = asyncio.create_task(stream.run(ledger))
        start = ledger.batches
        read_at: list[int] = []
        read = asyncio.create_task(ledger.get(gap_id))
        read.add_done_callback(lambda _: read_at.append(ledger.batches))
        for _ in range(60_000):  # polled: until the read is done or 300 batches went by
            if read.done() or ledger.batches >= start + 300:
                break
            await asyncio.sleep(0.001)
        done_during_the_stream = read.done()
        stream.running = False
        await producer
        gap = await read
        await asyncio.gather(*stream.asks)
    assert gap is not None
    assert gap.requesters[0].count == 2  # the repeated ask is in what it read
    # done while the stream still ran: waiting for the writer to run out of work, the read
    # would end only once the stream stopped (after 300 batches here). How many batches
    # it takes is no bound (its own SQL reads wait on the busy loop too: 2 to 12 seen)
    assert done_during_the_stream, (start, ledger.batches)
    assert read_at
    assert read_at[0] < start + 300, (start, read_at)


async def test_a_read_cancelled_does_not_cancel_the_writes_of_others(tmp_path: Path) -> None:
    """A read waiting for the repeated asks to be written (the reconciler at shutdown, a
    timeout around a scrape) is cancelled: the lookups whose asks are in the batch being
    written still get their gap ids."""
    async with open_gap_ledger(tmp_path / "gaps.sqlite3", monotonic=Ticks()) as ledger:
        gap_id = await ledger.record_id(vn_request())
        stream = Stream()
        producer = asyncio.create_task(stream.run(ledger))
        for _ in range(60_000):  # polled: a few batches of the stream written
            if ledger.batches >= 3:
                break
            await asyncio.sleep(0.001)
        assert await ledger.record_id(vn_request()) == gap_id  # from memory
        read = asyncio.create_task(ledger.count(GapStatus.OPEN))
        for _ in range(3):
            await asyncio.sleep(0)
        read.cancel()
        stream.running = False
        await producer
        async with asyncio.timeout(60):  # a guard: before the fix the writer could hang here
            results = await asyncio.gather(*stream.asks, return_exceptions=True)
            await ledger.drain()
    failed = [r for r in results if not isinstance(r, str)]
    assert failed == [], failed[:3]
    assert set(results) == {gap_id}
