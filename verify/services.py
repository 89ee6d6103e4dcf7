"""The service graph, built in one place: `open_services(settings)` opens the stores
(`verify.backends`), the replica, the outage log, the gap ledger and the intake journal,
and wires the intake, the breakers, `Resilience` (the lookup path), the journaled intake,
the reconciler (with its gap answerer, callback policy and grace period) and the health
monitor over them, all from settings. The service's one `cleanup_ctx`
(`verify.app`) and every CLI command open it alike, so a command answers, records and
drains exactly as the service does (same horizons, same outage rules).

On Elasticsearch the three stores (invoices, registry, originals) share one pair of
clients (the fail-fast request-path client and the patient batch client): one pool each per
process, not six.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from elasticsearch import AsyncElasticsearch

from fallback.breaker import BreakerConfig, BreakerState, CircuitBreaker
from fallback.callbacks import CallbackNotifier, CallbackPolicy
from fallback.gaps import ReconcileLedger, SqliteGapLedger, open_gap_ledger
from fallback.health import DependencyGuard, HealthMonitor, Metrics
from fallback.journaled_intake import JournaledIntake
from fallback.lookup.gap_answers import gap_answerer
from fallback.lookup.gap_facts import GapFacts
from fallback.lookup.resilience import Resilience
from fallback.metrics import work_sampler
from fallback.outages import OutageLog, System, open_outage_log
from fallback.reconciler import ReconcileProgress, Reconciler
from fallback.replica import Replica, WriteThrough
from indexer.intake import Intake
from indexer.journal import IntakeJournal, open_intake_journal
from indexer.model import Invoice
from indexer.signature import TrustAnchors
from indexer.store import InvoiceStore
from indexer.store.elasticsearch import ClientFactory, ClientOptions, default_client
from indexer.store.originals import OriginalStore
from indexer.store.registry import RegistryStore
from verify.backends import open_invoice_store, open_originals, open_registry, open_replica
from verify.settings import Settings
from verify.shared_state import SharedState, open_shared
from verify.watches.es_store import EsWatchStore
from verify.watches.events import WatchHook, WatchStore
from verify.watches.gaps import WatchedGaps
from verify.watches.store import open_watch_store


def outage_horizon(settings: Settings) -> timedelta:
    """How long an ended window stays in the outage log's memory: the intake lag and a day,
    so `upstream_hides` sees every window a miss may still fall under."""
    return timedelta(hours=settings.fallback.intake_lag_hours) + timedelta(days=1)


class SharedClients:
    """A `ClientFactory` that builds each kind of client (by url and options) once, so every
    Elasticsearch store of the process shares it. Stores close the clients they were given
    when they close; closing an already closed client is harmless, and the stores close
    together at the end."""

    def __init__(self, factory: ClientFactory | None = None) -> None:
        self._factory = factory or default_client
        self._clients: dict[tuple[str, ClientOptions], AsyncElasticsearch] = {}

    def __call__(self, url: str, options: ClientOptions) -> AsyncElasticsearch:
        client = self._clients.get((url, options))
        if client is None:
            client = self._clients[(url, options)] = self._factory(url, options)
        return client

    @property
    def built(self) -> int:
        """Clients (connection pools) built so far."""
        return len(self._clients)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()


def primary_ready(primary: DependencyGuard, outages: OutageLog) -> bool:
    """The reconciler may run: the primary's breaker closed, no maintenance of it."""
    return (primary.breaker.state is BreakerState.CLOSED
            and outages.active(System.PRIMARY) is None)


def journaled_intake(settings: Settings, intake: Intake, journal: IntakeJournal,
                     replica: Replica, primary: DependencyGuard, outages: OutageLog,
                     anchors: TrustAnchors) -> JournaledIntake:
    return JournaledIntake(
        intake, journal, replica, primary, outages, anchors=anchors,
        max_items=settings.max_package_items,
        write_timeout=settings.fallback.primary_write_timeout_ms / 1000,
        max_attempts=settings.fallback.journal_max_attempts)


def callback_policy(settings: Settings) -> CallbackPolicy:
    """How callbacks are sent: the gaps' and the watches' (docs/watches.md)."""
    fb = settings.fallback
    return CallbackPolicy(max_attempts=fb.callback_max_attempts,
                          backoff_base=float(fb.callback_backoff_seconds),
                          secret=fb.callback_secret,
                          allow_private=fb.callback_allow_private)


class WatchedIntakeHook(WriteThrough):
    """The intake's after-commit hook: the replica's write-through, then the watches'
    fan-out (`verify.watches.events`), for every commit, direct or drained from the journal.
    In the service the fan-out only queues the changes (`WatchHook.fan_out` records them in
    the background): a commit costs the same however many watch what it changed.
    Still a `WriteThrough` of the replica, as `JournaledIntake.apply_entries` checks."""

    def __init__(self, replica: Replica, watches: WatchHook) -> None:
        super().__init__(replica)
        self.watches = watches

    async def __call__(self, invoices: Sequence[Invoice]) -> None:
        await super().__call__(invoices)
        await self.watches(invoices)


def reconciler(settings: Settings, intake: JournaledIntake, gaps: ReconcileLedger,
               *, on_progress: Callable[[ReconcileProgress], None] | None = None,
               ) -> Reconciler:
    fb = settings.fallback
    return Reconciler(
        intake, gaps, gap_answerer(intake.intake.store), intake.replica,
        notifier=CallbackNotifier(gaps, callback_policy(settings), facts=GapFacts(
            intake.intake.registry, window_years=settings.verification_window_years).answer),
        grace=timedelta(hours=fb.gap_grace_hours),
        journal_retention=timedelta(days=fb.journal_retention_days),
        batch=fb.reconcile_batch_entries, batch_bytes=fb.reconcile_batch_bytes,
        on_progress=on_progress,
        ready=lambda: primary_ready(intake.primary, intake.outages))


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: InvoiceStore
    registry: RegistryStore
    originals: OriginalStore
    replica: Replica
    #: The intake straight to the primary (writes through to the replica).
    intake: Intake
    outages: OutageLog
    gaps: ReconcileLedger
    journal: IntakeJournal
    metrics: Metrics
    primary: DependencyGuard
    replica_guard: DependencyGuard
    #: The lookup path: primary or replica, and what a miss means
    #: (`fallback.lookup.resilience`).
    resilience: Resilience
    #: `POST /packages` and the journal's drain: the journal first, then the primary.
    journaled: JournaledIntake
    reconciler: Reconciler
    monitor: HealthMonitor
    clients: SharedClients
    #: With `INVOICE_ES_URL`: the deployment's shared keys, audit trail, windows and gaps
    #: (`verify.shared_state`); None on the embedded default.
    shared: SharedState | None = None
    #: The watches' fan-out and store (`verify.watches`), fed by the intake's and the
    #: reconciler's hooks.
    watches: WatchHook | None = None


def _open_shared(settings: Settings, clients: SharedClients,
                 ) -> contextlib.AbstractAsyncContextManager[SharedState | None]:
    return open_shared(settings, clients) if settings.es_url else contextlib.nullcontext()


@contextlib.asynccontextmanager
async def _watch_store(settings: Settings, shared: SharedState | None,
                       ) -> AsyncIterator[WatchStore]:
    """The process's watches: `watches.sqlite3`, or the deployment's on Elasticsearch
    (`verify.watches.es_store`), shared by every process."""
    if shared is not None:
        yield EsWatchStore(shared.store)
        return
    async with open_watch_store(settings.watches_path) as store:
        yield store


def _share_gaps(settings: Settings, shared: SharedState | None, local: SqliteGapLedger,
                ) -> contextlib.AbstractAsyncContextManager[ReconcileLedger]:
    """The process's ledger: its file, or the deployment's over it (`fallback.shared_gaps`)."""
    if shared is None:
        return contextlib.nullcontext(local)
    return shared.share_gaps(local, max_attempts=settings.fallback.callback_max_attempts)


def _quiet_s(settings: Settings, shared: SharedState | None) -> float:
    """How long a gap's memory may outlast the moment while nobody else writes the ledger's
    file: never with the shared ledger, whose resolutions by other processes do not touch
    this process's file (docs/outages.md#misses-under-load)."""
    return 0.0 if shared is not None else float(settings.fallback.miss_memory_quiet_s)


@contextlib.asynccontextmanager
async def open_services(settings: Settings, *, es_client_factory: ClientFactory | None = None,
                        anchors: TrustAnchors | None = None,
                        on_progress: Callable[[ReconcileProgress], None] | None = None,
                        close_dangling: bool = False) -> AsyncIterator[Services]:
    """Everything a process needs, closed in reverse order on exit. `close_dangling`: close
    detected windows a dead process left open (the service, at its start); `anchors`: the
    trust anchors the journaled intake checks XML signatures against (default: from the
    settings)."""
    fb = settings.fallback
    lag = timedelta(hours=fb.intake_lag_hours)
    config = BreakerConfig(fb.breaker_failures, float(fb.breaker_open_seconds))
    moment = fb.miss_memory_ms / 1000  # docs/outages.md#misses-under-load
    clients = SharedClients(es_client_factory)
    try:
        async with _open_shared(settings, clients) as shared, \
                open_registry(settings, clients) as registry, \
                open_originals(settings, clients) as originals, \
                open_replica(settings) as replica, \
                open_invoice_store(settings, clients) as store, \
                open_outage_log(settings.outages_path, horizon=outage_horizon(settings),
                                sharing=shared.windows if shared else None) as outages, \
                open_gap_ledger(settings.gaps_path, moment_s=moment,
                                quiet_s=_quiet_s(settings, shared)) as local_gaps, \
                _share_gaps(settings, shared, local_gaps) as gaps, \
                open_intake_journal(settings.journal_path) as journal, \
                _watch_store(settings, shared) as watch_store:
            if close_dangling:
                await outages.close_dangling()
            watches = WatchHook(watch_store)
            intake = Intake(store, settings.rules, registry, originals,
                            after_commit=WatchedIntakeHook(replica, watches))
            primary = DependencyGuard(System.PRIMARY, CircuitBreaker("primary", config),
                                      outages)
            replica_guard = DependencyGuard(System.REPLICA, CircuitBreaker("replica", config),
                                            outages)
            metrics = Metrics()
            resilience = Resilience(
                store, replica, primary, replica_guard, outages, gaps,
                primary_timeout=fb.primary_timeout_ms / 1000, intake_lag=lag,
                metrics=metrics, journal=journal, moment_s=moment)
            journaled = journaled_intake(
                settings, intake, journal, replica, primary, outages,
                settings.load_trust_anchors() if anchors is None else anchors)
            reconciles = reconciler(settings, journaled, WatchedGaps(gaps, watches),
                                    on_progress=on_progress)
            # healing starts when the primary is usable again, not at the next periodic check
            primary.on_closed = reconciles.wake
            if shared is not None:
                shared.on_gaps_arrived = reconciles.wake
            monitor = HealthMonitor([(primary, store.ping), (replica_guard, replica.ping)],
                                    outages, metrics, interval=fb.probe_interval_seconds,
                                    timeout=fb.primary_timeout_ms / 1000,
                                    ready=lambda: primary_ready(primary, outages),
                                    on_ready=reconciles.wake)
            metrics.watch(work_sampler(journal, gaps, reconciles))
            try:
                yield Services(settings, store, registry, originals, replica, intake, outages,
                               gaps, journal, metrics, primary, replica_guard, resilience,
                               journaled, reconciles, monitor, clients, shared, watches)
            finally:  # what was counted since the last flush (with --workers: into the files)
                metrics.flush()
    finally:
        await clients.aclose()
