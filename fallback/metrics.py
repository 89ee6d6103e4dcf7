"""The process's metrics, kept by prometheus-client (`GET /metrics` writes them out).

Counted where they happen: HTTP requests and their latency by route template, method and
status (`observe_request`, from the outermost middleware), answers by source and status,
gaps recorded by reason and probe failures (the lookup path and the health monitor add to
`answers`, `gaps` and `probe_failures`, which read like `collections.Counter`). Read from
the objects that hold them (`sample`, on every scrape and after every health probe): the
breakers' states and counters, maintenance in force, the intake journal's entries by state,
the gap ledger's gaps by status and the reconciler's runs.

Requests are tallied in plain Python per (route, method, status), and answers, gaps and
probe failures counted in `CountedBy` dicts; both are handed to prometheus-client in bulk
(`flush`): before every exposition, so `/metrics` shows everything counted before it, after
every `sample` (every health probe), and in multiprocess mode also at the end of the event
loop's turn in which a request was answered, so the other workers' `/metrics` see them too
(a per-request `inc` + `observe` cost 1.1 us, 2.3 us with the multiprocess files, and each
`c[key] += 1` another 0.6).

One registry per `Metrics` (one per app: tests run several apps in one process). With
`PROMETHEUS_MULTIPROC_DIR` set before the first import of prometheus-client (what
`invoice-verify serve --workers N` does) the values live in that directory's files and any
worker's `/metrics` sums them (`exposition`): gauges of a worker's own state by the
multiprocess mode named at each (`livesum`: workers in a breaker state, journal entries of
every worker's own journal; `livemax`: what every worker reads alike, the shared gap ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.multiprocess import MultiProcessCollector

from fallback.breaker import BreakerState, CircuitBreaker
from fallback.gaps import GapLedger, GapStatus

if TYPE_CHECKING:
    from fallback.reconciler import Reconciler
    from indexer.journal import IntakeJournal

# `_created` series double every counter's lines and no dashboard of ours reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

#: Request latency buckets, seconds: a lookup takes milliseconds, a report or batch seconds.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: A tally of requests (`Metrics.observe_request`): count, sum of seconds, then one count
#: per bucket of `LATENCY_BUCKETS` and the +Inf bucket (not cumulative, as prometheus-client
#: keeps them).
_FIRST_BUCKET = 2
_TALLY_SIZE = _FIRST_BUCKET + len(LATENCY_BUCKETS) + 1
K = TypeVar("K", bound=Hashable)
#: The fields of a reconcile run's progress published as `invoice_reconcile_last_run{what}`.
RECONCILE_FIELDS = (
    "journal_total",
    "journal_applied",
    "journal_quarantined",
    "journal_pruned",
    "gaps_total",
    "gaps_checked",
    "gaps_found",
    "gaps_missing",
    "gaps_waiting",
    "callbacks_sent",
    "callbacks_failed",
)


class CountedBy(Counter[K]):
    """A `collections.Counter` whose counts are also a Prometheus counter's (`labels(key)`
    gives the label values): the code that counts keeps `c[key] += 1`, a plain dict
    operation, and what was added since is handed to the Prometheus counter by `flush`
    (`Metrics.flush`). Counts only go up."""

    def __init__(self, counter: PromCounter, labels: Callable[[K], Sequence[str]]) -> None:
        super().__init__()
        self._counter = counter
        self._labels = labels
        #: The labelled child of each key, looked up once (`labels()` takes a lock and
        #: checks its values: about 4 us on every lookup's answer count).
        self._children: dict[K, PromCounter] = {}
        self._handed: dict[K, int] = {}  # each key's count the Prometheus counter has

    def flush(self) -> None:
        handed = self._handed
        for key, count in self.items():
            given = handed.get(key, 0)
            if count > given:
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self._counter.labels(*self._labels(key))
                child.inc(count - given)
                handed[key] = count


class Guard(Protocol):
    """What `sample` reads of a dependency guard (`fallback.health.DependencyGuard`)."""

    @property
    def system(self) -> object: ...

    @property
    def breaker(self) -> CircuitBreaker: ...


class Sampler(Protocol):
    def __call__(self, metrics: Metrics) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class LastProbe:
    """When a health probe last ran against a system, and whether the system answered."""

    at: datetime
    ok: bool


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.http_requests = PromCounter(
            "invoice_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "invoice_http_request_duration_seconds",
            "Time to answer an HTTP request (until "
            "its handler returned), by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._http: dict[tuple[str, str, int], tuple[PromCounter, Histogram]] = {}
        #: requests not yet handed to prometheus-client (`observe_request`)
        self._tallies: dict[tuple[str, str, int], list[float]] = {}
        self._shared = multiprocess_dir() is not None
        self.answers: CountedBy[tuple[str, str]] = CountedBy(
            PromCounter(
                "invoice_answers",
                "Lookup answers by source (primary, replica) and status",
                ["source", "status"],
                registry=r,
            ),
            lambda key: key,
        )
        self.gaps: CountedBy[str] = CountedBy(
            PromCounter(
                "invoice_gaps_recorded",
                "Unconfirmed answers that recorded a gap, by reason",
                ["reason"],
                registry=r,
            ),
            lambda key: (key,),
        )
        #: `GET /invoices/lookup` answers `reused` or `built` (verify/lookup/reuse.py).
        self.lookup_answers: CountedBy[str] = CountedBy(
            PromCounter(
                "invoice_lookup_answers",
                "GET /invoices/lookup answers built, or reused while nothing they were "
                "built from changed",
                ["how"],
                registry=r,
            ),
            lambda key: (key,),
        )
        #: this process's last probe of each system: when, and whether it answered
        self.last_probe: dict[str, LastProbe] = {}
        self.probe_failures: CountedBy[str] = CountedBy(
            PromCounter(
                "invoice_probe_failures", "Failed health probes, by system", ["system"], registry=r
            ),
            lambda key: (key,),
        )
        self.breaker_state = Gauge(
            "invoice_breaker_state",
            "1 for the state each breaker is in (with several workers: how many are in it)",
            ["state", "system"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.breaker_counts = {
            name: PromCounter(f"invoice_breaker_{name}", text, ["system"], registry=r)
            for name, text in (
                ("failures", "Failed calls counted by each breaker"),
                ("rejected", "Calls a breaker refused while open (answered from the fallback)"),
                ("opened", "Times each breaker opened"),
            )
        }
        self._breaker_seen: dict[tuple[str, str], int] = {}
        self.maintenance = Gauge(
            "invoice_maintenance_active",
            "1 while a declared maintenance window of the primary is in force",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.journal_entries = Gauge(
            "invoice_journal_entries",
            "Intake journal entries by state (pending: "
            "acknowledged, not yet in the primary; quarantined: set aside for an operator)",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.gaps_by_status = Gauge(
            "invoice_gaps",
            "Gaps in the ledger by status",
            ["status"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reconcile_running = Gauge(
            "invoice_reconcile_running",
            "1 while a reconcile run is going (with several workers: how many)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.reconcile_runs = PromCounter(
            "invoice_reconcile_runs", "Reconcile runs started", registry=r
        )
        self._runs_seen = 0
        self.reconcile_last = Gauge(
            "invoice_reconcile_last_run",
            "The current or last reconcile run's progress: "
            "journal entries to apply and applied, gaps checked, found, missing and waiting, "
            "callbacks sent and failed, entries quarantined and pruned",
            ["what"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.reconcile_finished = Gauge(
            "invoice_reconcile_last_run_finished_timestamp_seconds",
            "When the last reconcile run finished (Unix time)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._guards: list[Guard] = []
        self._maintenance: Callable[[], bool] | None = None
        self._samplers: list[Sampler] = []
        self._counted = [v for v in vars(self).values() if isinstance(v, CountedBy)]

    # -- counted where it happens ---------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counted here in plain Python, handed to prometheus-client by `flush`: before
        every exposition, and in multiprocess mode also at the end of the event loop's turn
        (the other workers' `/metrics` read the files)."""
        key = (route, method, status)
        tally = self._tallies.get(key)
        if tally is None:
            if not self._tallies and self._shared:
                self._flush_soon()
            tally = self._tallies[key] = [0.0] * _TALLY_SIZE
        tally[0] += 1
        tally[1] += seconds
        tally[_FIRST_BUCKET + bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def _flush_soon(self) -> None:
        # Without an event loop (never in the service): handed over at the next exposition.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """What was counted since the last flush, into prometheus-client: the requests'
        count, latency sum and each bucket's count by (route, method, status), as one
        `inc` each instead of one counter `inc` and one `observe` per request (in
        multiprocess mode each is a write to this worker's file), and what each
        `CountedBy` (answers, gaps, probe failures...) added."""
        for counted in self._counted:
            counted.flush()
        tallies, self._tallies = self._tallies, {}
        for key, tally in tallies.items():
            pair = self._http.get(key)
            if pair is None:
                labels = (key[0], key[1], str(key[2]))
                pair = self._http[key] = (
                    self.http_requests.labels(*labels),
                    self.http_latency.labels(*labels),
                )
            pair[0].inc(tally[0])
            # prometheus-client has no bulk `observe`: its sum and non-cumulative bucket
            # values are added to as `observe` (0.26) does one at a time; a release that
            # keeps them otherwise fails tests/fallback/test_metrics_requests.py.
            histogram = pair[1]
            histogram._sum.inc(tally[1])
            for bucket, count in zip(histogram._buckets, tally[_FIRST_BUCKET:], strict=True):
                if count:
                    bucket.inc(count)

    # -- read from what holds it ----------------------------------------------------------

    def watch_health(self, guards: Iterable[Guard], maintenance: Callable[[], bool]) -> None:
        """The breakers to publish, and whether a maintenance window is in force."""
        self._guards = list(guards)
        self._maintenance = maintenance

    def watch(self, sampler: Sampler) -> None:
        """Something else read on every `sample` (the journal, the gaps, the reconciler)."""
        self._samplers.append(sampler)

    async def sample(self) -> None:
        for guard in self._guards:
            system, breaker = str(guard.system), guard.breaker
            for state in BreakerState:
                self.breaker_state.labels(str(state), system).set(int(breaker.state is state))
            for name, counter in self.breaker_counts.items():
                now = int(getattr(breaker.counters, name))
                seen = self._breaker_seen.get((name, system), 0)
                child = counter.labels(system)  # shown from 0 on
                if now > seen:
                    child.inc(now - seen)
                self._breaker_seen[(name, system)] = now
        if self._maintenance is not None:
            self.maintenance.set(int(self._maintenance()))
        for sampler in self._samplers:
            await sampler(self)
        self.flush()  # after every health probe too: its failures, for the other workers

    def reconcile_progress(self, reconciler: Reconciler) -> None:
        p = reconciler.progress
        if p.runs > self._runs_seen:
            self.reconcile_runs.inc(p.runs - self._runs_seen)
            self._runs_seen = p.runs
        self.reconcile_running.set(int(reconciler.running))
        for what in RECONCILE_FIELDS:
            self.reconcile_last.labels(what).set(getattr(p, what))
        if p.finished_at is not None:
            self.reconcile_finished.set(p.finished_at.timestamp())

    def exposition(self) -> bytes:
        """The text exposition: this registry's, or every worker's summed in multiprocess
        mode."""
        self.flush()
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def work_sampler(journal: IntakeJournal, gaps: GapLedger, reconciler: Reconciler) -> Sampler:
    """Reads the journal's entries by state, the ledger's gaps by status and the reconciler's
    progress into `metrics` (`Metrics.watch` it once, where the three are built)."""

    async def sample(metrics: Metrics) -> None:
        for state, n in (await journal.counts()).items():
            metrics.journal_entries.labels(state).set(n)
        for status in GapStatus:
            metrics.gaps_by_status.labels(str(status)).set(await gaps.count(status))
        metrics.reconcile_progress(reconciler)

    return sample
