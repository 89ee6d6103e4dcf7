"""`invoice-verify outage declare|list`: outage windows, in the data directory."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from fallback.outages import OutageError, OutageWindow, System
from verify.cli.common import DataDir, err, load_settings
from verify.services import open_services

outage_app = typer.Typer(help="Outage windows: declare maintenance or an authority outage, "
                         "list them (in the data directory).", no_args_is_help=True)


def _instant(raw: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        err.print(f"[red]{option} must be an ISO 8601 date-time with an offset[/]")
        raise typer.Exit(2) from None
    return moment


@outage_app.command("declare")
def outage_declare(
        start: Annotated[str, typer.Option("--from", help="start, ISO 8601 with offset")],
        end: Annotated[str, typer.Option("--to", help="end, ISO 8601 with offset")],
        system: Annotated[System, typer.Option(help="primary (our index: maintenance) or "
                                                    "upstream (the authority's system)")],
        reason: Annotated[str, typer.Option(help="why, for the record")] = "maintenance",
        data_dir: DataDir = None) -> None:
    """Declare a window (POST /api/v1/outages does the same); a running service picks it up
    within one probe interval (INVOICE_PROBE_INTERVAL_SECONDS)."""
    settings = load_settings(data_dir=data_dir)
    begin, finish = _instant(start, "--from"), _instant(end, "--to")

    async def declare() -> OutageWindow:
        async with open_services(settings) as services:
            return await services.outages.declare(system, begin, finish, reason, "cli")

    try:
        window = asyncio.run(declare())
    except OutageError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(window.as_dict(), ensure_ascii=False) + "\n")


@outage_app.command("list")
def outage_list(data_dir: DataDir = None) -> None:
    """Every recorded window, detected and declared, oldest first, as JSON."""
    settings = load_settings(data_dir=data_dir)

    async def listing() -> list[OutageWindow]:
        windows: list[OutageWindow] = []
        async with open_services(settings) as services:
            while page := await services.outages.list(after=windows[-1].id if windows else 0,
                                         limit=1000):
                windows.extend(page)
        return windows

    sys.stdout.write(json.dumps([w.as_dict() for w in asyncio.run(listing())],
                                ensure_ascii=False, indent=2) + "\n")
