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
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    Progress,
    TaskID,
)

from fallback.gaps import GapStatus
from fallback.health import HealthMonitor
from fallback.outages import OutageWindow, System
from fallback.reconciler import ReconcileProgress, Reconciler
from verify.cli.common import DataDir, err, load_settings, progress_bar
from verify.cli.heap import freeze_startup_heap
from verify.services import open_services
from verify.settings import Settings


@dataclass(slots=True)
class Bars:
    """Progress bars of one run: journal entries applied, gaps re-checked."""

    progress: Progress
    journal: TaskID | None = None
    gaps: TaskID | None = None

    def __call__(self, p: ReconcileProgress) -> None:
        if p.phase == "journal":
            if self.journal is None:
                self.journal = self.progress.add_task(
                    "journal entries applied", total=p.journal_total
                )
            self.progress.update(
                self.journal,
                completed=p.journal_applied,
                total=max(p.journal_total, p.journal_applied),
            )
        elif p.phase == "gaps":
            if self.gaps is None:
                self.gaps = self.progress.add_task("open gaps re-checked", total=p.gaps_total)
            self.progress.update(
                self.gaps, completed=p.gaps_checked, total=max(p.gaps_total, p.gaps_checked)
            )


@contextlib.asynccontextmanager
async def open_reconciler(
    settings: Settings,
    bars: Bars | None = None,
) -> AsyncIterator[tuple[Reconciler, HealthMonitor]]:
    """The reconciler and health monitor of `verify.services`, as the service builds them."""
    async with open_services(settings, on_progress=bars) as services:
        yield services.reconciler, services.monitor


@dataclass(frozen=True, slots=True)
class InMaintenance:
    """A run not started: the primary is in a declared maintenance window."""

    window: OutageWindow
    journal_pending: int
    gaps_open: int

    def message(self) -> str:
        until = "further notice" if self.window.end is None else self.window.as_dict()["end"]
        return (
            f"the primary is unavailable: it is in a declared maintenance window until "
            f"{until} (window {self.window.id}, {self.window.reason!r}); nothing was "
            "applied. Waiting for a run after the window: journal entries "
            f"{self.journal_pending}, open gaps {self.gaps_open}"
        )


def run_once(settings: Settings, progress: Progress) -> ReconcileProgress | InMaintenance:
    async def run() -> ReconcileProgress | InMaintenance:
        bars = Bars(progress)
        async with open_services(settings, on_progress=bars) as services:
            freeze_startup_heap()
            await services.monitor.probe_once()  # also reads windows declared meanwhile
            window = services.outages.active(System.PRIMARY)
            if window is not None:
                return InMaintenance(
                    window,
                    (await services.journal.counts())["pending"],
                    await services.gaps.count(GapStatus.OPEN),
                )
            return await services.reconciler.run()

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


def reconcile_cmd(
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="keep running: reconcile whenever the primary is usable and there "
            "is work (the compose reconciler)",
        ),
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            help="seconds between checks in --loop [env INVOICE_RECONCILE_INTERVAL_SECONDS]",
            min=0.1,
        ),
    ] = None,
    heartbeat: Annotated[
        Path | None,
        typer.Option(help="with --loop: file touched after every check, for health checks"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Drain the intake journal into the primary, re-check every open gap (found or, after
    the grace period, missing), deliver callbacks (POST /api/v1/reconcile does the same).
    Exit 1 if the primary failed and work was left, or if it is in a declared maintenance
    window (then nothing is applied)."""
    settings = load_settings(data_dir=data_dir)
    if loop:
        run_loop(
            settings, heartbeat, interval or float(settings.fallback.reconcile_interval_seconds)
        )
        return
    with progress_bar() as bar:
        result = run_once(settings, bar)
    if isinstance(result, InMaintenance):
        err.print(f"[red]not run: {result.message()}[/]", highlight=False)
        raise typer.Exit(1)
    err.print(
        f"journal: {result.journal_applied} of {result.journal_total} entries applied; "
        f"gaps: {result.gaps_found} found, {result.gaps_missing} missing, "
        f"{result.gaps_waiting} waiting for the grace period; callbacks: "
        f"{result.callbacks_sent} sent, {result.callbacks_failed} failed "
        f"({result.seconds} s)",
        highlight=False,
    )
    if result.stopped_by:
        err.print(f"[red]stopped: {result.stopped_by}[/]", highlight=False)
        raise typer.Exit(1)
