"""Health of the primary index and the replica: a breaker per dependency whose state changes
become detected outage windows, and a monitor that probes both in the background.

`DependencyGuard` is what the request path and the monitor share: `allow()` before a call,
`succeeded()` / `failed()` after it. The breaker opening starts a detected window of that
system in the outage log; closing ends it. Probes (`HealthMonitor.probe_once`, every
`interval` seconds) ping each dependency with a bounded timeout, so a failure is noticed (and
a recovery too, through the half-open trial) without waiting for a lookup to hit it.
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

    async def _note(self, transition: Transition) -> None:
        try:
            if transition.new is BreakerState.OPEN and transition.old is BreakerState.CLOSED:
                await self.outages.open_detected(self.system, transition.at, transition.reason)
            elif transition.new is BreakerState.CLOSED:
                await self.outages.close_detected(self.system, transition.at)
        except Exception:  # the outage log is a record; failing it must not fail a lookup
            log.exception("could not record the %s outage window", self.system)


Probe = Callable[[], Awaitable[None]]


class HealthMonitor:
    def __init__(self, checks: list[tuple[DependencyGuard, Probe]], outages: OutageLog,
                 metrics: Metrics, *, interval: float, timeout: float) -> None:
        self.checks = checks
        self.outages = outages
        self.metrics = metrics
        self.interval = interval
        self.timeout = timeout
        metrics.watch_health([guard for guard, _ in checks],
                             lambda: outages.active(System.PRIMARY) is not None)

    async def probe_once(self) -> None:
        try:
            await self.outages.refresh()  # windows declared from the CLI
        except Exception:
            log.exception("could not refresh outage windows")
        for guard, probe in self.checks:
            if not guard.allow():
                continue
            try:
                async with asyncio.timeout(self.timeout):
                    await probe()
            except asyncio.CancelledError:
                guard.abandoned()
                raise
            except Exception as exc:  # any failure of a ping is "not healthy"
                self.metrics.probe_failures[str(guard.system)] += 1
                self.metrics.last_probe[str(guard.system)] = LastProbe(datetime.now(UTC), False)
                await guard.failed(f"probe: {type(exc).__name__}")
            else:
                self.metrics.last_probe[str(guard.system)] = LastProbe(datetime.now(UTC), True)
                await guard.succeeded()
        try:  # gauges of every worker stay fresh, not only of the one scraped
            await self.metrics.sample()
        except Exception:
            log.exception("could not sample the metrics")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.probe_once()

