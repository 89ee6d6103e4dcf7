"""Health of the primary index and the replica: a breaker per dependency whose state changes
become detected outage windows, and a monitor that probes both in the background.

`DependencyGuard` is what the request path and the monitor share: `allow()` before a call,
`succeeded()` / `failed()` after it. The breaker opening starts a detected window of that
system in the outage log; closing ends it. Probes (`HealthMonitor.probe_once`, every
`interval` seconds) ping each dependency with a bounded timeout, so a failure is noticed (and
a recovery too, through the half-open trial) without waiting for a lookup to hit it. While a
breaker is open the probe still runs, outside its trial slot: once a probe has seen the
dependency fail and then sees it answer, the breaker closes at once
(`CircuitBreaker.probe_succeeded`) instead of waiting out its open period.

Healing starts at once: the guard of the primary calls `on_closed` when its breaker closes
(a probe's or a request's trial), and the monitor calls `on_ready` when its `ready` check (no
maintenance window, breaker closed) turns true at a probe, a declared window having ended
meanwhile. The service graph wires both to `Reconciler.wake`, so the journal's drain and the
gaps' re-check start within one probe interval of the primary coming back, not at the
reconciler's next periodic check (docs/outages.md#the-reconciler).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fallback.breaker import BreakerState, CircuitBreaker, Transition
from fallback.metrics import LastProbe, Metrics
from fallback.outages import OutageLog, System

__all__ = ["DependencyGuard", "HealthMonitor", "Metrics", "Probe"]

log = logging.getLogger("fallback.health")


class DependencyGuard:
    def __init__(self, system: System, breaker: CircuitBreaker, outages: OutageLog) -> None:
        self.system = system
        self.breaker = breaker
        self.outages = outages
        #: Called after the breaker closed and its window was recorded (the reconciler's
        #: wake-up for the primary; nothing for the replica).
        self.on_closed: Callable[[], None] | None = None

    def allow(self) -> bool:
        allowed, _ = self.breaker.allow()  # open -> half-open keeps the window open
        return allowed

    async def succeeded(self) -> None:
        transition = self.breaker.record_success()
        if transition is not None:  # most calls change no state: nothing to record
            await self._note(transition)

    async def failed(self, error: str) -> None:
        transition = self.breaker.record_failure(error)
        if transition is not None:
            await self._note(transition)

    def abandoned(self) -> None:
        self.breaker.abandon()

    async def probed_early(self, error: str | None) -> None:
        """The health probe's outcome while the breaker is open (outside its trial slot):
        `error` None when it answered."""
        if error is not None:
            self.breaker.probe_failed(error)
            return
        transition = self.breaker.probe_succeeded()
        if transition is not None:
            await self._note(transition)

    async def _note(self, transition: Transition) -> None:
        try:
            if transition.new is BreakerState.OPEN and transition.old is BreakerState.CLOSED:
                await self.outages.open_detected(self.system, transition.at, transition.reason)
            elif transition.new is BreakerState.CLOSED:
                await self.outages.close_detected(self.system, transition.at)
        except Exception:  # the outage log is a record; failing it must not fail a lookup
            log.exception("could not record the %s outage window", self.system)
        if transition.new is BreakerState.CLOSED and self.on_closed is not None:
            self.on_closed()


Probe = Callable[[], Awaitable[None]]


class HealthMonitor:
    def __init__(self, checks: list[tuple[DependencyGuard, Probe]], outages: OutageLog,
                 metrics: Metrics, *, interval: float, timeout: float,
                 ready: Callable[[], bool] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        """`ready`: whether the primary may be used now; `on_ready` is called at the probe
        that finds it turned true (a maintenance window over, a breaker closed)."""
        self.checks = checks
        self.outages = outages
        self.metrics = metrics
        self.interval = interval
        self.timeout = timeout
        self.ready = ready
        self.on_ready = on_ready
        self._was_ready = True
        metrics.watch_health([guard for guard, _ in checks],
                             lambda: outages.active(System.PRIMARY) is not None)

    async def probe_once(self) -> None:
        try:
            await self.outages.refresh()  # windows declared from the CLI
        except Exception:
            log.exception("could not refresh outage windows")
        for guard, probe in self.checks:
            await self._probe(guard, probe)
        self._check_ready()
        try:  # gauges of every worker stay fresh, not only of the one scraped
            await self.metrics.sample()
        except Exception:
            log.exception("could not sample the metrics")

    async def _probe(self, guard: DependencyGuard, probe: Probe) -> None:
        """One ping: the breaker's trial (closed, or half-open with the slot free), or,
        while it is open, a probe outside the slot that may end the open period early."""
        early = guard.breaker.probing_early
        if not early and not guard.allow():
            return  # half-open, a call's trial in flight
        try:
            async with asyncio.timeout(self.timeout):
                await probe()
        except asyncio.CancelledError:
            if not early:
                guard.abandoned()
            raise
        except Exception as exc:  # any failure of a ping is "not healthy"
            self.metrics.probe_failures[str(guard.system)] += 1
            self.metrics.last_probe[str(guard.system)] = LastProbe(datetime.now(UTC), False)
            error = f"probe: {type(exc).__name__}"
            if early:
                await guard.probed_early(error)
            else:
                await guard.failed(error)
                guard.breaker.probe_failed(error)  # seen down by the probe itself
        else:
            self.metrics.last_probe[str(guard.system)] = LastProbe(datetime.now(UTC), True)
            await (guard.probed_early(None) if early else guard.succeeded())

    def _check_ready(self) -> None:
        if self.ready is None:
            return
        ready = self.ready()
        if ready and not self._was_ready and self.on_ready is not None:
            self.on_ready()
        self._was_ready = ready

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.probe_once()

