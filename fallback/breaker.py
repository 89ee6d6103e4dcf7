"""A circuit breaker around one dependency (the primary index, the replica).

States:

- `closed`: calls go through; `failure_threshold` consecutive failures open it.
- `open`: calls are refused at once (the caller answers from its fallback) for
  `open_seconds`, so a stalled cluster costs nobody its timeout while it is known down.
- `half_open`: after `open_seconds`, exactly one trial call (a request or the health
  monitor's probe) is let through at a time; `probe_successes` successes in a row close the
  breaker, one failure opens it again for another `open_seconds`.

The health monitor's probe (`fallback.health.HealthMonitor`) runs while the breaker is open
too, outside the trial slot (`probe_failed` / `probe_succeeded`): once a probe has seen the
dependency fail (since the breaker last closed) and then sees it answer, the open period ends
at once, counted as a trial success (`probe_successes` of them close the breaker), so
recovery from an outage the probe can see waits one probe interval, not `open_seconds`.
This is active health checking clearing an ejection, as Envoy's outlier detection does
(`successful_active_health_check_uneject_host`). When no probe failed, the answering probe
proves nothing (the calls failed in a way a ping does not see: a write lock, slow queries),
so the breaker waits its full period, as before.

The breaker does no I/O and never sleeps: time comes from an injected clock (UTC datetimes,
`datetime.now(UTC)` by default), and every state change is returned to the caller as a
`Transition` (and logged here), so the async caller can record outage windows. Counters for
`/metrics` live on the object.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger("fallback.breaker")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    probe_successes: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.probe_successes < 1:
            raise ValueError("failure_threshold and probe_successes must be at least 1")
        if self.open_seconds <= 0:
            raise ValueError("open_seconds must be positive")


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    old: BreakerState
    new: BreakerState
    at: datetime
    reason: str


@dataclass(slots=True)
class BreakerCounters:
    successes: int = 0
    failures: int = 0
    rejected: int = 0  # calls refused while open (answered from the fallback)
    opened: int = 0
    closed: int = 0


class CircuitBreaker:
    def __init__(self, name: str, config: BreakerConfig | None = None, *,
                 clock: Clock = utc_now) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._probe_successes = 0
        self._opened_at: datetime | None = None
        self._trial_in_flight = False
        #: A health probe failed since the breaker last closed (`probe_failed`).
        self._probe_saw_failure = False
        self.last_error: str | None = None
        self.counters = BreakerCounters()

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    def _cooled_down(self, now: datetime) -> bool:
        assert self._opened_at is not None
        return now - self._opened_at >= timedelta(seconds=self.config.open_seconds)

    def _move(self, new: BreakerState, now: datetime, reason: str) -> Transition:
        old, self._state = self._state, new
        if new is BreakerState.OPEN:
            self._opened_at = now
            self._probe_successes = 0
            if old is BreakerState.CLOSED:
                self.counters.opened += 1
        elif new is BreakerState.CLOSED:
            self._opened_at = None
            self._probe_saw_failure = False
            self._consecutive_failures = 0
            self.counters.closed += 1
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        log.log(level, "breaker %s: %s -> %s (%s)", self.name, old, new, reason,
                extra={"breaker": self.name, "from": str(old), "to": str(new)})
        return Transition(self.name, old, new, now, reason)

    def allow(self) -> tuple[bool, Transition | None]:
        """May a call go through now? Moving from open to half-open is a transition too.
        A `True` in half-open reserves the one trial slot: report its outcome."""
        if self._state is BreakerState.CLOSED:
            return True, None
        now = self._clock()
        transition = None
        if self._state is BreakerState.OPEN:
            if not self._cooled_down(now):
                self.counters.rejected += 1
                return False, None
            transition = self._move(BreakerState.HALF_OPEN, now, "open period over: probing")
        if self._trial_in_flight:
            self.counters.rejected += 1
            return False, transition
        self._trial_in_flight = True
        return True, transition

    def record_success(self) -> Transition | None:
        self.counters.successes += 1
        self._trial_in_flight = False
        self._consecutive_failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self.config.probe_successes:
                return self._move(BreakerState.CLOSED, self._clock(), "probe succeeded")
        return None

    def abandon(self) -> None:
        """A call let through ended without an outcome (cancelled): free the trial slot."""
        self._trial_in_flight = False

    def record_failure(self, error: str = "") -> Transition | None:
        self.counters.failures += 1
        self._trial_in_flight = False
        self.last_error = error or None
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            return self._move(BreakerState.OPEN, now, f"probe failed: {error}")
        if self._state is BreakerState.OPEN:
            return None  # a call that started before it opened
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.config.failure_threshold:
            return self._move(BreakerState.OPEN, now,
                              f"{self._consecutive_failures} failures in a row: {error}")
        return None

    def probe_failed(self, error: str = "") -> None:
        """A health probe failed (as the trial, or while open outside the slot; the trial's
        outcome is reported with `record_failure` too): the dependency is seen down, so a
        later probe's success may end the open period."""
        self._probe_saw_failure = True
        if self._state is BreakerState.OPEN:
            self._probe_successes = 0
            self.last_error = error or self.last_error

    def probe_succeeded(self) -> Transition | None:
        """The health monitor's probe, run while open (no trial slot), succeeded. After a
        failed probe since the breaker last closed it counts as a trial success: enough of them
        (`probe_successes`) close the breaker now. Otherwise, or in any other state (a
        call's trial decides there), nothing changes."""
        if self._state is not BreakerState.OPEN or not self._probe_saw_failure:
            return None
        self._probe_successes += 1
        if self._probe_successes < self.config.probe_successes:
            return None
        self._trial_in_flight = False
        return self._move(BreakerState.CLOSED, self._clock(),
                          "health probe answered again during the open period")

    @property
    def probing_early(self) -> bool:
        """Open and still in its open period: the health monitor probes outside the
        trial slot (`probe_failed` / `probe_succeeded`)."""
        return self._state is BreakerState.OPEN and not self._cooled_down(self._clock())

    def snapshot(self) -> dict[str, object]:
        c = self.counters
        return {"state": str(self._state),
                "opened_at": self._opened_at.isoformat() if self._opened_at else None,
                "consecutive_failures": self._consecutive_failures,
                "last_error": self.last_error, "successes": c.successes,
                "failures": c.failures, "rejected": c.rejected, "opened": c.opened,
                "closed": c.closed}
