"""`invoice-verify reconcile`: one run with progress bars, or `--loop` (the `reconciler`
process of compose.yaml), which runs whenever the primary is usable and there is work, and
touches a heartbeat file after every check so a health check can tell it is alive.
The loop stops cleanly (files closed, checks finished or rolled back) on SIGINT and on
SIGTERM, the signal `docker compose stop` sends, whatever the signals' disposition it
inherited (a shell starting it in the background hands it SIGINT ignored).

It opens the same files and backends as the service in the same data directory (the
journal, the gap ledger and the outage log are local SQLite files; the primary and the
replica as configured), so it drains what the service journaled and resolves the gaps the
service recorded. Running it beside the service is safe (`fallback.reconciler`).

`invoice-verify journal list|retry|drop`: the journal's quarantine for operators, on the
journal file itself (the service need not run; docs/journal.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import Progress, TaskID

from fallback.health import HealthMonitor
from fallback.reconciler import ReconcileProgress, Reconciler
from indexer.journal import EntryState, IntakeJournal, open_intake_journal
from verify.heap import freeze_startup_heap
from verify.services import open_services
from verify.settings import Settings, SettingsError


@dataclass(slots=True)
class Bars:
    """Progress bars of one run: journal entries applied, gaps re-checked."""

    progress: Progress
    journal: TaskID | None = None
    gaps: TaskID | None = None

    def __call__(self, p: ReconcileProgress) -> None:
        if p.phase == "journal":
            if self.journal is None:
                self.journal = self.progress.add_task("journal entries applied",
                                                      total=p.journal_total)
            self.progress.update(self.journal, completed=p.journal_applied,
                                 total=max(p.journal_total, p.journal_applied))
        elif p.phase == "gaps":
            if self.gaps is None:
                self.gaps = self.progress.add_task("open gaps re-checked", total=p.gaps_total)
            self.progress.update(self.gaps, completed=p.gaps_checked,
                                 total=max(p.gaps_total, p.gaps_checked))


@contextlib.asynccontextmanager
async def open_reconciler(settings: Settings, bars: Bars | None = None,
                          ) -> AsyncIterator[tuple[Reconciler, HealthMonitor]]:
    """The reconciler and health monitor of `verify.services`, as the service builds them."""
    async with open_services(settings, on_progress=bars) as services:
        yield services.reconciler, services.monitor


def run_once(settings: Settings, progress: Progress) -> ReconcileProgress:
    async def run() -> ReconcileProgress:
        async with open_reconciler(settings, Bars(progress)) as (rec, monitor):
            freeze_startup_heap()
            await monitor.probe_once()
            return await rec.run()

    return asyncio.run(run())


def run_loop(settings: Settings, heartbeat: Path | None, interval: float) -> None:
    """Until interrupted. The heartbeat file's modification time is the last check."""

    def beat() -> None:
        if heartbeat is not None:
            heartbeat.touch()

    async def loop() -> None:
        running, main = asyncio.get_running_loop(), asyncio.current_task()
        assert main is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(signum, main.cancel)
        async with open_reconciler(settings) as (rec, monitor):
            freeze_startup_heap()
            probes = asyncio.create_task(monitor.run(), name="health-monitor")
            try:
                await rec.run_forever(interval=interval, heartbeat=beat)
            finally:
                probes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probes

    if heartbeat is not None:
        heartbeat.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(loop())


T = TypeVar("T")
journal_app = typer.Typer(help="The intake journal: list entries, retry or drop quarantined "
                               "ones (docs/journal.md).", no_args_is_help=True)
_DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                                                                   "[env INVOICE_DATA_DIR]")]


def _journal_do(data_dir: Path | None, action: Callable[[IntakeJournal], Awaitable[T]]) -> T:
    try:
        settings = Settings.from_env().with_overrides(data_dir=data_dir)
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise typer.Exit(2) from None

    async def run() -> T:
        async with open_intake_journal(settings.journal_path) as journal:
            return await action(journal)

    return asyncio.run(run())


@journal_app.command("list")
def journal_list(state: Annotated[EntryState, typer.Option(help="entry state")] =
                 EntryState.QUARANTINED,
                 limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
                 data_dir: _DataDir = None) -> None:
    """Entries in one state (quarantined by default), oldest first, as JSON lines."""
    entries = _journal_do(data_dir, lambda j: j.entries(state, limit=limit))
    for entry in entries:
        sys.stdout.write(json.dumps(entry.summary(), ensure_ascii=False) + "\n")


@journal_app.command("retry")
def journal_retry(seq: int, data_dir: _DataDir = None) -> None:
    """Put a quarantined entry back in the queue (its attempts reset) once its cause is
    fixed; the reconciler applies it on its next run."""
    if not _journal_do(data_dir, lambda j: j.retry(seq)):
        sys.stderr.write(f"no quarantined journal entry has sequence number {seq}\n")
        raise typer.Exit(1)
    sys.stdout.write(f"entry {seq} is pending again\n")


@journal_app.command("drop")
def journal_drop(seq: int, data_dir: _DataDir = None) -> None:
    """Delete a quarantined entry (its package is given up; its id may be posted again)."""
    if not _journal_do(data_dir, lambda j: j.drop(seq)):
        sys.stderr.write(f"no quarantined journal entry has sequence number {seq}\n")
        raise typer.Exit(1)
    sys.stdout.write(f"entry {seq} dropped\n")
