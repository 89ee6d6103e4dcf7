"""`invoice-verify journal list|retry|drop`: the intake journal's quarantine for operators, on
the journal files themselves (the service need not run; docs/journal.md). A data directory
holds one journal per process that served from it (`journal.sqlite3`, `journal-2.sqlite3`,
...: `verify.cli.workers`); the commands read every one, or the one `--slot` names. A file a
live process holds is read and changed in place (SQLite shares it; a retried entry is that
process's reconciler's to apply), never claimed."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from indexer.journal import EntryState, IntakeJournal, open_intake_journal
from verify.cli.workers import JOURNAL_SLOTS, journal_name, journal_slots
from verify.settings import Settings, SettingsError

T = TypeVar("T")
journal_app = typer.Typer(help="The intake journal: list entries, retry or drop quarantined "
                               "ones (docs/journal.md).", no_args_is_help=True)
_DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                                                                   "[env INVOICE_DATA_DIR]")]
_Slot = Annotated[int | None, typer.Option(
    "--slot", min=1, max=JOURNAL_SLOTS,
    help="only this process slot's journal (1: journal.sqlite3, n: journal-n.sqlite3)")]


def _journal_do(data_dir: Path | None, slot: int | None,
                action: Callable[[IntakeJournal], Awaitable[T]]) -> list[tuple[int, T]]:
    """`action` on each journal file of the data directory (or `slot`'s), by slot."""
    try:
        settings = Settings.from_env().with_overrides(data_dir=data_dir)
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise typer.Exit(2) from None
    slots = [slot] if slot is not None else journal_slots(settings.data_dir) or [1]

    async def run() -> list[tuple[int, T]]:
        done: list[tuple[int, T]] = []
        for each in slots:
            async with open_intake_journal(settings.data_dir / journal_name(each)) as journal:
                done.append((each, await action(journal)))
        return done

    return asyncio.run(run())


async def _quarantined(journal: IntakeJournal, seq: int) -> bool:
    entries = await journal.entries(EntryState.QUARANTINED, after=seq - 1, limit=1)
    return bool(entries) and entries[0].seq == seq


def _one_file(data_dir: Path | None, slot: int | None, seq: int) -> int:
    """The slot whose journal has `seq` quarantined; exit 1 when none, 2 when several do."""
    found = [each for each, there in _journal_do(data_dir, slot,
                                                 lambda j: _quarantined(j, seq)) if there]
    if not found:
        sys.stderr.write(f"no quarantined journal entry has sequence number {seq}\n")
        raise typer.Exit(1)
    if len(found) > 1:
        names = ", ".join(journal_name(each) for each in found)
        sys.stderr.write(f"entry {seq} is quarantined in {names}: say which with --slot\n")
        raise typer.Exit(2)
    return found[0]


def _change(data_dir: Path | None, slot: int | None, seq: int,
            action: Callable[[IntakeJournal], Awaitable[bool]], done: str) -> None:
    """`action` on the one journal file where `seq` is quarantined."""
    ((each, changed),) = _journal_do(data_dir, _one_file(data_dir, slot, seq), action)
    if not changed:
        sys.stderr.write(f"no quarantined journal entry has sequence number {seq}\n")
        raise typer.Exit(1)
    sys.stdout.write(f"entry {seq} of {journal_name(each)} {done}\n")


@journal_app.command("list")
def journal_list(state: Annotated[EntryState, typer.Option(help="entry state")] =
                 EntryState.QUARANTINED,
                 limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
                 slot: _Slot = None, data_dir: _DataDir = None) -> None:
    """Entries in one state (quarantined by default), oldest first in each journal file, as
    JSON lines naming their file (`journal`)."""
    for each, entries in _journal_do(data_dir, slot, lambda j: j.entries(state, limit=limit)):
        for entry in entries:
            line = {**entry.summary(), "journal": journal_name(each)}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


@journal_app.command("retry")
def journal_retry(seq: int, slot: _Slot = None, data_dir: _DataDir = None) -> None:
    """Put a quarantined entry back in the queue (its attempts reset) once its cause is
    fixed; the reconciler applies it on its next run."""
    _change(data_dir, slot, seq, lambda j: j.retry(seq), "is pending again")


@journal_app.command("drop")
def journal_drop(seq: int, slot: _Slot = None, data_dir: _DataDir = None) -> None:
    """Delete a quarantined entry (its package is given up; its id may be posted again)."""
    _change(data_dir, slot, seq, lambda j: j.drop(seq), "dropped")
