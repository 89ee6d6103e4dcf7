"""Outage windows: declared and detected, what counts as maintenance, the upstream rule,
and the log on its SQLite file. The health guard turning breaker changes into windows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from fallback.breaker import BreakerConfig, CircuitBreaker
from fallback.gaps import GapReason
from fallback.health import DependencyGuard, HealthMonitor, Metrics
from fallback.outages import (
    _SCHEMA,
    HOLD_LEASE,
    OutageError,
    OutageLog,
    System,
    WindowKind,
    open_outage_log,
)
from fallback.replica import MemoryReplica
from tests.fallback.test_breaker import FakeClock

LAG = timedelta(hours=24)


async def test_declared_window_is_maintenance_only_while_in_force(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.now + timedelta(hours=1)
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        window = await log.declare(System.PRIMARY, start, start + timedelta(hours=2),
                                   "add nodes", "key_admin")
        assert window.kind is WindowKind.DECLARED
        assert log.active(System.PRIMARY) is None
        clock.advance(3600)
        assert log.active(System.PRIMARY) == window
        assert log.active(System.UPSTREAM) is None
        clock.advance(2 * 3600)
        assert log.active(System.PRIMARY) is None


@pytest.mark.parametrize(("system", "start_h", "end_h", "message"), [
    (System.PRIMARY, 2, 1, "end after it starts"),
    (System.PRIMARY, 0, 24 * 32, "at most"),
    (System.REPLICA, 0, 1, "primary or upstream"),
])
async def test_bad_declarations_are_refused(tmp_path: Path, system: System, start_h: int,
                                            end_h: int, message: str) -> None:
    base = datetime(2026, 11, 22, tzinfo=UTC)
    async with open_outage_log(tmp_path / "o.sqlite3") as log:
        with pytest.raises(OutageError, match=message):
            await log.declare(system, base + timedelta(hours=start_h),
                              base + timedelta(hours=end_h), "", None)
        with pytest.raises(OutageError, match="UTC offset"):
            await log.declare(System.PRIMARY, datetime(2026, 11, 22),
                              datetime(2026, 11, 23), "", None)


async def test_upstream_window_hides_misses_until_the_lag_after_its_end(
        tmp_path: Path) -> None:
    clock = FakeClock()  # 2026-11-22 02:00 UTC = 09:00 in Hanoi
    start = clock.now - timedelta(hours=1)
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        window = await log.declare(System.UPSTREAM, start, start + timedelta(hours=3),
                                   "GDT down", None)
        assert log.upstream_hides("vn", None, LAG) == window, "no date: any miss now"
        assert log.upstream_hides("vn", date(2026, 11, 22), LAG) == window
        assert log.upstream_hides("vn", date(2026, 11, 21), LAG) == window, \
            "issued within the lag before the start: maybe still in flight"
        assert log.upstream_hides("vn", date(2026, 11, 19), LAG) is None, \
            "issued well before the outage: the miss is authoritative"
        assert log.upstream_hides("vn", date(2026, 11, 24), LAG) is None
        clock.advance(3600 * (2 + 23))
        assert log.upstream_hides("vn", None, LAG) == window, "backlog may still arrive"
        clock.advance(3600)
        assert log.upstream_hides("vn", None, LAG) is None, "lag after the end: over"
        assert log.upstream_hides("vn", date(2026, 11, 22), LAG) is None


async def test_future_upstream_window_hides_nothing_yet(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        await log.declare(System.UPSTREAM, clock.now + timedelta(hours=1),
                          clock.now + timedelta(hours=2), "", None)
        assert log.upstream_hides("cn", None, LAG) is None


async def test_detected_windows_open_once_close_and_persist(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "o.sqlite3"
    async with open_outage_log(path, clock=clock) as log:
        first = await log.open_detected(System.PRIMARY, clock.now, "breaker opened")
        again = await log.open_detected(System.PRIMARY, clock.now, "breaker opened")
        assert again.id == first.id
        assert log.detected(System.PRIMARY) == first
        clock.advance(90)
        await log.close_detected(System.PRIMARY, clock.now)
        assert log.detected(System.PRIMARY) is None
        await log.open_detected(System.REPLICA, clock.now, "redis down")
    clock.advance(10)
    async with open_outage_log(path, clock=clock) as reopened:  # its process let go of it
        closed = await reopened.get(first.id)
        assert closed is not None
        assert closed.end is not None
        assert closed.end - closed.start == timedelta(seconds=90)
        await reopened.close_dangling()
        (replica,) = await reopened.list(system=System.REPLICA)
        assert replica.end == clock.now
        assert replica.reason.endswith("(closed at restart)")
        assert [w.id for w in await reopened.list(after=first.id)] == [replica.id]
        assert await reopened.list(kind=WindowKind.DECLARED) == []


async def test_a_process_starting_fresh_leaves_a_window_another_still_holds(
        tmp_path: Path) -> None:
    """Two processes on one file (`serve --workers`, compose's replicas on one volume): a
    detected window ends when the last live process that sees the outage recovers, never
    because another one started or recovered first."""
    clock = FakeClock()
    path = tmp_path / "o.sqlite3"
    async with open_outage_log(path, clock=clock) as a:
        window = await a.open_detected(System.REPLICA, clock.now, "redis down")
        async with open_outage_log(path, clock=clock) as b:
            await b.close_dangling()  # b's start
            assert b.detected(System.REPLICA) == window, "a still holds it"
            assert await b.open_detected(System.REPLICA, clock.now, "redis down") == window
            clock.advance(5)
            await a.close_detected(System.REPLICA, clock.now)  # a recovered first
            assert a.detected(System.REPLICA) is not None, "b still sees the outage"
            clock.advance(5)
            await b.close_detected(System.REPLICA, clock.now)
            assert b.detected(System.REPLICA) is None
            ended = await b.get(window.id)
            assert ended is not None
            assert ended.end == clock.now


async def test_a_window_whose_holder_died_is_closed_after_its_lease(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "o.sqlite3"
    async with open_outage_log(path, clock=clock) as survivor:
        await survivor.declare(System.PRIMARY, clock.now, clock.now + timedelta(hours=1),
                               "upgrade", "ops")
        dead = OutageLog(survivor._conn, clock=clock)  # a process SIGKILLed: never lets go
        window = await dead.open_detected(System.PRIMARY, clock.now, "probe failed")
        await survivor.refresh()
        assert survivor.detected(System.PRIMARY) == window, "within its lease"
        clock.advance(HOLD_LEASE.total_seconds() + 1)
        await survivor.refresh()
        assert survivor.detected(System.PRIMARY) is None
        closed = await survivor.get(window.id)
        assert closed is not None
        assert closed.reason.endswith("(its processes stopped)")
        assert survivor.active(System.PRIMARY) is not None, "declared windows end by time"


async def test_guard_records_a_detected_window_per_outage(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        breaker = CircuitBreaker("primary", BreakerConfig(2, 30), clock=clock)
        guard = DependencyGuard(System.PRIMARY, breaker, log)
        await guard.failed("refused")
        assert log.detected(System.PRIMARY) is None
        await guard.failed("refused")
        window = log.detected(System.PRIMARY)
        assert window is not None
        assert window.start == clock.now
        clock.advance(30)
        assert guard.allow()
        await guard.failed("still refused")  # half-open -> open: the same window
        assert log.detected(System.PRIMARY) == window
        clock.advance(30)
        assert guard.allow()
        await guard.succeeded()
        assert log.detected(System.PRIMARY) is None
        (closed,) = await log.list()
        assert closed.end == clock.now


class Unreachable:
    """A dependency that is down: its ping fails like a refused connection."""

    backend = "unreachable"

    def __init__(self) -> None:
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        raise ConnectionRefusedError("nothing listens")


def guarded(system: System, log: OutageLog, clock: FakeClock, *,
            failures: int = 1) -> DependencyGuard:
    """The guard of `system`: its breaker opens after `failures`, for 30 s."""
    breaker = CircuitBreaker(str(system), BreakerConfig(failures, 30), clock=clock)
    return DependencyGuard(system, breaker, log)


async def test_monitor_probes_open_the_breaker_and_count(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        down = Unreachable()
        primary = guarded(System.PRIMARY, log, clock, failures=2)
        replica = guarded(System.REPLICA, log, clock, failures=2)
        metrics = Metrics()
        monitor = HealthMonitor([(primary, down.ping), (replica, MemoryReplica().ping)], log,
                                metrics, interval=5, timeout=1)
        await monitor.probe_once()
        await monitor.probe_once()
        assert str(primary.breaker.state) == "open"
        assert str(replica.breaker.state) == "closed"
        await monitor.probe_once()
        assert down.pings == 3, "probed while open too, outside the trial slot"
        assert metrics.probe_failures["primary"] == 3
        assert str(primary.breaker.state) == "open"
        assert log.detected(System.PRIMARY) is not None
        # the operator page shows each system's last probe: when, and whether it answered
        assert not metrics.last_probe["primary"].ok
        assert metrics.last_probe["replica"].ok
        assert metrics.last_probe["replica"].at >= metrics.last_probe["primary"].at


class Switchable:
    """A dependency that is down until the test brings it back."""

    def __init__(self) -> None:
        self.up = False

    async def ping(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("nothing listens")


async def test_the_probe_that_sees_the_primary_back_closes_it_and_wakes(
        tmp_path: Path) -> None:
    """Healing (docs/outages.md#the-reconciler): the probe after the primary returns closes
    its breaker 5 s into a 30 s open period, ends the detected window, and calls the
    wake-ups the service graph gives the reconciler."""
    clock = FakeClock()
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        dep = Switchable()
        guard = guarded(System.PRIMARY, log, clock)
        closed: list[str] = []
        guard.on_closed = lambda: closed.append("breaker")
        monitor = HealthMonitor(
            [(guard, dep.ping)], log, Metrics(), interval=5, timeout=1,
            ready=lambda: str(guard.breaker.state) == "closed"
            and log.active(System.PRIMARY) is None,
            on_ready=lambda: closed.append("ready"))
        await monitor.probe_once()  # fails: open
        clock.advance(5)
        await monitor.probe_once()  # fails again, seen while open
        assert str(guard.breaker.state) == "open"
        assert closed == []
        dep.up = True
        clock.advance(5)
        await monitor.probe_once()
        assert str(guard.breaker.state) == "closed"
        assert log.detected(System.PRIMARY) is None
        (window,) = await log.list()
        assert window.end == clock.now
        assert closed == ["breaker", "ready"]


async def test_the_probe_after_a_maintenance_window_wakes(tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        guard = guarded(System.PRIMARY, log, clock)
        woken: list[bool] = []
        monitor = HealthMonitor([(guard, MemoryReplica().ping)], log, Metrics(), interval=5,
                                timeout=1, ready=lambda: log.active(System.PRIMARY) is None,
                                on_ready=lambda: woken.append(True))
        await log.declare(System.PRIMARY, clock.now, clock.now + timedelta(minutes=1),
                          "upgrade", "ops")
        await monitor.probe_once()
        assert woken == []
        clock.advance(60)
        await monitor.probe_once()
        assert woken == [True]
        await monitor.probe_once()
        assert woken == [True], "once per return"


async def test_a_file_from_before_the_numbering_keeps_its_windows(tmp_path: Path) -> None:
    """The outage log's layout is its step 1 (`migrate`) and the holders of detected windows
    step 2: a version-0 file made by an earlier release goes through both and keeps its
    rows; a new one is the same."""
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO outages (system, kind, start_ts, end_ts, reason, declared_by,"
                     " created_at) VALUES ('primary', 'declared', 10.0, 20.0, 'add nodes',"
                     " 'key_admin', '2026-01-01T00:00:00Z')")
    conn.close()
    async with open_outage_log(path) as log:
        window = await log.get(1)
        assert window is not None
        assert (window.system, window.reason) == (System.PRIMARY, "add nodes")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()


async def test_miss_window_an_upstream_window_before_the_intake_lag(tmp_path: Path) -> None:
    """What makes a miss from a healthy primary unconfirmed, in one place."""
    clock = FakeClock()  # 2026-11-22 02:00 UTC = 09:00 in Hanoi
    async with open_outage_log(tmp_path / "o.sqlite3", clock=clock) as log:
        assert log.miss_window("vn", None, LAG) is None
        assert log.miss_window("vn", date(2026, 11, 19), LAG) is None
        lag = log.miss_window("vn", date(2026, 11, 22), LAG)
        assert lag is not None
        assert (lag.reason, lag.outage_id) == (GapReason.INTAKE_LAG, None)
        later = clock.now + timedelta(days=3)  # the caller's clock decides
        assert log.miss_window("vn", date(2026, 11, 22), LAG, later) is None
        window = await log.declare(System.UPSTREAM, clock.now - timedelta(hours=1),
                                   clock.now + timedelta(hours=2), "GDT down", None)
        for issued_on in (None, date(2026, 11, 22)):
            hidden = log.miss_window("vn", issued_on, LAG)
            assert hidden is not None
            assert (hidden.reason, hidden.outage, hidden.outage_id) == (
                GapReason.UPSTREAM_OUTAGE, window, window.id)
        assert log.miss_window("vn", date(2026, 11, 19), LAG) is None
