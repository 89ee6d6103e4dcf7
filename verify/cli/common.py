"""What every command shares: settings from the environment with the options' overrides,
the consoles, the progress bars, the `--data-dir` option, and the service graph's intake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from indexer.intake import Intake
from verify.services import open_services
from verify.settings import Settings, SettingsError

#: Who gaps recorded from the command line name as their requester.
REQUESTER = "cli"
# soft_wrap: long lines (curl commands, file paths) stay whole, so they can be copied.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                                                                  "[env INVOICE_DATA_DIR]")]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with the options' overrides; exit 2 on a bad one."""
    try:
        return Settings.from_env().with_overrides(**overrides)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


@contextlib.asynccontextmanager
async def open_intake(settings: Settings) -> AsyncIterator[Intake]:
    """The same intake the service runs (`verify.services`): invoice store plus the
    registry's rules, and the originals store, so XML ingested from files keeps its originals
    as the endpoint does."""
    async with open_services(settings) as services:
        yield services.intake

