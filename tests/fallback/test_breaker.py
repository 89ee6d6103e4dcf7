"""The breaker's state machine, driven by a clock the test moves (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fallback.breaker import BreakerConfig, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, failures: int = 3, open_seconds: float = 30,
            probes: int = 1) -> CircuitBreaker:
    return CircuitBreaker("primary", BreakerConfig(failures, open_seconds, probes), clock=clock)


def test_opens_after_the_threshold_of_consecutive_failures(clock: FakeClock) -> None:
    b = breaker(clock)
    assert b.record_failure("x") is None
    assert b.record_failure("x") is None
    transition = b.record_failure("timeout")
    assert transition is not None
    assert (transition.old, transition.new, transition.at) == (
        BreakerState.CLOSED, BreakerState.OPEN, clock.now)
    assert "3 failures in a row" in transition.reason
    assert b.state is BreakerState.OPEN
    assert b.counters.opened == 1


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_open_refuses_calls_until_the_open_period_is_over(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(29.9)
    assert b.allow() == (False, None)
    assert b.counters.rejected == 1
    clock.advance(0.1)
    allowed, transition = b.allow()
    assert allowed
    assert transition is not None
    assert (transition.old, transition.new) == (BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_half_open_lets_one_trial_through_at_a_time(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(30)
    assert b.allow()[0]
    assert b.allow() == (False, None), "a second call waits for the trial's outcome"
    transition = b.record_success()
    assert transition is not None
    assert (transition.old, transition.new) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert b.allow() == (True, None)
    assert b.counters.closed == 1


def test_a_failed_trial_opens_again_for_a_full_period(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(30)
    assert b.allow()[0]
    transition = b.record_failure("refused")
    assert transition is not None
    assert (transition.old, transition.new) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    clock.advance(29)
    assert not b.allow()[0]
    clock.advance(1)
    assert b.allow()[0]
    assert b.counters.opened == 1, "re-opening from half-open is the same outage"


def test_several_probe_successes_may_be_required(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, probes=2)
    b.record_failure()
    clock.advance(30)
    assert b.allow()[0]
    assert b.record_success() is None
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()[0]
    assert b.record_success() is not None
    assert b.state is BreakerState.CLOSED


def test_an_abandoned_trial_frees_the_slot(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(30)
    assert b.allow()[0]
    b.abandon()
    assert b.allow()[0]


def test_a_late_failure_while_open_changes_nothing(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    opened_at = b.opened_at
    clock.advance(10)
    assert b.record_failure() is None
    assert b.opened_at == opened_at


def test_snapshot_reports_state_and_counters(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure("boom")
    snap = b.snapshot()
    assert snap["state"] == "open"
    assert snap["last_error"] == "boom"
    assert snap["failures"] == 1


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"open_seconds": 0},
                                    {"probe_successes": 0}])
def test_config_is_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_a_probe_that_saw_the_outage_ends_the_open_period_when_it_answers(
        clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure("refused")
    clock.advance(5)
    assert b.probing_early
    b.probe_failed("probe: ConnectionRefusedError")
    clock.advance(5)
    transition = b.probe_succeeded()
    assert transition is not None, "closed 10 s into a 30 s open period"
    assert (transition.old, transition.new, transition.at) == (
        BreakerState.OPEN, BreakerState.CLOSED, clock.now)
    assert b.allow() == (True, None)
    assert b.counters.closed == 1


def test_a_probe_that_never_saw_it_fail_waits_the_full_period(clock: FakeClock) -> None:
    """Calls failed in a way a ping does not see (a write lock): the probe's success proves
    nothing, so the open period runs its course."""
    b = breaker(clock, failures=1)
    b.record_failure("write timed out")
    clock.advance(5)
    assert b.probe_succeeded() is None
    assert b.state is BreakerState.OPEN
    clock.advance(25)
    assert not b.probing_early
    assert b.allow()[0], "then the trial, as before"


def test_early_probes_need_as_many_successes_as_trials(clock: FakeClock) -> None:
    b = breaker(clock, failures=1, probes=2)
    b.record_failure()
    b.probe_failed("down")
    assert b.probe_succeeded() is None
    b.probe_failed("down again")  # the count starts over
    assert b.probe_succeeded() is None
    assert b.probe_succeeded() is not None
    assert b.state is BreakerState.CLOSED


def test_an_early_probe_leaves_the_half_open_trial_to_its_call(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    b.probe_failed("down")
    clock.advance(30)
    assert not b.probing_early
    assert b.allow()[0]  # a request holds the trial slot
    assert b.probe_succeeded() is None, "not open any more: the trial decides"
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() == (False, None), "the slot is still the request's"
    assert b.record_success() is not None


def test_a_reopened_breaker_needs_a_failed_probe_again(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.record_failure()
    b.probe_failed("down")
    assert b.probe_succeeded() is not None
    b.record_failure("down once more")
    assert b.probe_succeeded() is None, "the failed probe belonged to the last open period"


def test_probes_that_opened_it_count_as_seeing_the_outage(clock: FakeClock) -> None:
    """The probes failed as trials while closed and opened it; the primary comes back
    before any probe ran in the open period: the first answering probe closes it."""
    b = breaker(clock, failures=2)
    for _ in range(2):
        assert b.allow()[0]
        b.record_failure("probe: ConnectionRefusedError")
        b.probe_failed("probe: ConnectionRefusedError")
    assert b.state is BreakerState.OPEN
    clock.advance(1)
    assert b.probe_succeeded() is not None
