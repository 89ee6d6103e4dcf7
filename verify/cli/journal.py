"""`invoice-verify journal list|retry|drop`: the intake journal's quarantine for operators, on
the journal file itself (the service need not run; docs/journal.md)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from indexer.journal import EntryState, IntakeJournal, open_intake_journal
from verify.settings import Settings, SettingsError

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
