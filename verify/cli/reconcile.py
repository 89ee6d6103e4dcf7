"""`invoice-verify reconcile`: one run with progress bars, or `--loop` (the `reconciler`
process of compose.yaml), which runs whenever the primary is usable and there is work, and
touches a heartbeat file after every check so a health check can tell it is alive.
The loop stops cleanly (files closed, checks finished or rolled back) on SIGINT and on
SIGTERM, the signal `docker compose stop` sends, whatever the signals' disposition it
inherited (a shell starting it in the background hands it SIGINT ignored).

It opens the same files and backends as the service in the same data directory (the gap
ledger and the outage log are local SQLite files; the primary and the replica as
configured), so it resolves the gaps the service recorded. Journals: every process owns one
slot of the data directory (`verify.cli.workers`); this command claims one too (the lowest
free: a dead process's, if any) and drains it, then every other journal file whose slot no
live process holds, each claimed for the time of its run (`drain_unclaimed`), so nothing a
dead worker or replica acknowledged is stranded, and a slot a live process holds is left to
that process's own reconciler. Running it beside the service is safe
(`fallback.reconciler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
from indexer.journal import open_intake_journal
from verify.cli.common import DataDir, err, load_settings, progress_bar
from verify.cli.heap import freeze_startup_heap
from verify.cli.workers import journal_name, journal_slots, try_claim, with_own_journal
from verify.services import Services, journaled_intake, open_services
from verify.settings import Settings

log = logging.getLogger("verify.reconcile")


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


@contextlib.asynccontextmanager
async def open_claimed(settings: Settings, bars: Bars | None = None,
                       ) -> AsyncIterator[Services]:
    """The service graph over a journal slot of this process's own, claimed as `serve`
    claims one (the lowest free slot: a dead process's, whose entries it then drains)."""
    own, claim = with_own_journal(settings)
    try:
        async with open_services(own, on_progress=bars) as services:
            yield services
    finally:
        os.close(claim.fd)


async def drain_unclaimed(services: Services) -> list[tuple[str, ReconcileProgress]]:
    """Every other journal file of the data directory with pending entries whose slot no
    live process holds: claimed for the time of a run of the same reconciler over it. A
    slot a live process holds is skipped (that process drains its own)."""
    settings = services.settings
    runs: list[tuple[str, ReconcileProgress]] = []
    for slot in journal_slots(settings.data_dir):
        if journal_name(slot) == settings.journal_file:
            continue
        claim = try_claim(settings.data_dir, slot)
        if claim is None:
            continue
        try:
            async with open_intake_journal(settings.data_dir / claim.name) as journal:
                if not (await journal.counts())["pending"]:
                    continue
                intake = journaled_intake(settings, services.intake, journal,
                                          services.replica, services.primary,
                                          services.outages, services.journaled.anchors)
                runs.append((claim.name, await services.reconciler.over(intake).run()))
        finally:
            os.close(claim.fd)
    return runs


def _fold(result: ReconcileProgress, others: list[tuple[str, ReconcileProgress]]) -> None:
    """The other journals' runs counted into the run's figures."""
    for name, other in others:
        result.journal_total += other.journal_total
        result.journal_applied += other.journal_applied
        result.journal_quarantined += other.journal_quarantined
        if other.stopped_by and not result.stopped_by:
            result.stopped_by = f"{name}: {other.stopped_by}"


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
        async with open_claimed(settings, bars) as services:
            freeze_startup_heap()
            await services.monitor.probe_once()  # also reads windows declared meanwhile
            window = services.outages.active(System.PRIMARY)
            if window is not None:
                return InMaintenance(
                    window,
                    (await services.journal.counts())["pending"],
                    await services.gaps.count(GapStatus.OPEN),
                )
            result = await services.reconciler.run()
            if not result.stopped_by:
                _fold(result, await drain_unclaimed(services))
            return result

    return asyncio.run(run())


async def _unclaimed_loop(services: Services, interval: float) -> None:
    """Every `interval` while the primary is usable: the journals no live process holds."""
    while True:
        await asyncio.sleep(interval)
        if services.reconciler.ready is not None and not services.reconciler.ready():
            continue
        try:
            for name, run in await drain_unclaimed(services):
                log.info("drained a journal no live process holds",
                         extra={"journal": name, "applied": run.journal_applied})
        except Exception:  # the next round tries again
            log.exception("draining the journals no live process holds failed")


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
        async with open_claimed(settings) as services:
            freeze_startup_heap()
            tasks = [asyncio.create_task(services.monitor.run(), name="health-monitor"),
                     asyncio.create_task(_unclaimed_loop(services, interval),
                                         name="unclaimed-journals")]
            try:
                await services.reconciler.run_forever(interval=interval, heartbeat=beat)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

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
    """Drain the intake journals into the primary (a slot of its own and every journal file
    of the data directory no live process holds), re-check every open gap (found or, after
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
