"""`invoice-verify report missing|ledger`: the reports of `GET /api/v1/reports/missing` and
`POST /api/v1/reports/ledger` run from the command line, on the data directory's backends
(`verify.services`, as the service opens them). The ledger's lines are checked exactly as the
service checks them (`verify.reports.ledger_check`): the primary and the replica as
configured, and the data directory's outage log, gap ledger and intake journal, so an
unconfirmed line records its gap where the service's reconciler resolves it (requester
`cli`). No key, no redaction: whoever can read the data directory sees everything in it
anyway."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from indexer.ledger_file import LedgerFileError, LedgerTable
from verify.cli.common import REQUESTER, DataDir, err, load_settings, progress_bar
from verify.http.errors import ApiError
from verify.lookup.facts import AnswerFacts
from verify.reports import ledger, missing
from verify.reports.ledger import LedgerRequest, file_error, ledger_request, read_lines
from verify.reports.ledger_check import LedgerTotals, LineChecker
from verify.reports.ledger_lines import LedgerLine, LineError
from verify.reports.missing import Totals, missing_request
from verify.reports.outage_gaps import outage_gaps
from verify.reports.query import Period, report_day
from verify.services import open_services
from verify.settings import Settings

report_app = typer.Typer(help="Reports for auditors, from the primary index.",
                         no_args_is_help=True)


def _period(year: int | None, date_from: str | None, date_to: str | None) -> Period:
    """A report's period from the options (400-style `ApiError` for a bad date)."""
    return Period(year, None if date_from is None else report_day("from", date_from),
                  None if date_to is None else report_day("to", date_to))


@report_app.command("missing")
def report_missing(
        seller: Annotated[str, typer.Option(help="seller tax id (vn MST or cn tax id)")],
        template: Annotated[str | None, typer.Option(help="vn template digit")] = None,
        series: Annotated[str | None, typer.Option(help="vn series, e.g. C22TAA")] = None,
        code: Annotated[str | None, typer.Option(help="cn invoice code")] = None,
        year: Annotated[int | None, typer.Option(help="issue year")] = None,
        date_from: Annotated[str | None, typer.Option(
            "--from", help="first issue date YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, typer.Option(
            "--to", help="last issue date YYYY-MM-DD (inclusive)")] = None,
        fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
        out: Annotated[Path | None, typer.Option(
            help="file to write (default: standard output)")] = None,
        data_dir: DataDir = None) -> None:
    """Missing-invoice report: per numbering sequence, first/last number seen, count issued,
    missing and cancelled ranges (GET /api/v1/reports/missing, run on the primary index)."""
    settings = load_settings(data_dir=data_dir)
    try:
        request = missing_request(seller, template=template, series=series, code=code,
                                  period=_period(year, date_from, date_to), fmt=fmt)
    except ApiError as exc:
        err.print(f"[red]{exc.code}: {exc.message}[/] {exc.details or ''}", highlight=False)
        raise typer.Exit(2) from None

    async def run(sink: BinaryIO) -> Totals:
        totals = Totals()
        async with open_services(settings) as services:
            gaps = outage_gaps(services.gaps, services.outages, request.scope)
            with progress_bar() as bar:
                task = bar.add_task("numbers checked", total=None)
                async with contextlib.aclosing(missing.render(request, services.store, totals,
                                                      gaps)) as chunks:
                    async for chunk in chunks:
                        sink.write(chunk)
                        bar.update(task, completed=totals.issued)
        return totals

    if out is None:
        totals = asyncio.run(run(sys.stdout.buffer))
        sys.stdout.flush()
    else:
        with out.open("wb") as sink:
            totals = asyncio.run(run(sink))
    err.print(f"{totals.sequences} sequences, {totals.issued} numbers issued: "
              f"{totals.missing} missing, {totals.cancelled} cancelled; outage gaps: "
              f"{totals.gaps_open} open, {totals.gaps_missing} missing", highlight=False)


@report_app.command("ledger")
def report_ledger(
        file: Annotated[Path, typer.Argument(help="the purchase ledger, CSV or XLSX")],
        buyer: Annotated[str, typer.Option("--buyer-tax-id", help="the buyer's tax id")],
        date_from: Annotated[str | None, typer.Option(
            "--from", help="first issue date of the period, YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, typer.Option(
            "--to", help="last issue date of the period (inclusive)")] = None,
        year: Annotated[int | None, typer.Option(help="the period as a year")] = None,
        fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
        out: Annotated[Path | None, typer.Option(
            help="file to write (default: standard output)")] = None,
        data_dir: DataDir = None) -> None:
    """Ledger reconciliation: each ledger line against the index, and the buyer's invoices
    of the period the ledger lacks (POST /api/v1/reports/ledger). Exit 1 if the file cannot
    be read as a ledger."""
    settings = load_settings(data_dir=data_dir)
    try:
        request = ledger_request(buyer, period=_period(year, date_from, date_to), fmt=fmt)
    except ApiError as exc:
        err.print(f"[red]{exc.code}: {exc.message}[/] {exc.details or ''}", highlight=False)
        raise typer.Exit(2) from None
    try:
        table, lines = read_lines(file.read_bytes(), request.scope.buyer_tax_id, settings.rules)
    except OSError as exc:
        err.print(f"[red]{file}: {exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    except LedgerFileError as exc:
        error = file_error(exc)
        err.print(f"[red]{file}: {error.code}: {error.message}[/] {error.details or ''}",
                  highlight=False)
        raise typer.Exit(1) from None

    def run(sink: BinaryIO) -> str:
        with progress_bar() as bar:
            task = bar.add_task("ledger lines checked", total=len(lines))
            totals = asyncio.run(write_ledger_report(
                settings, request, table, lines, sink,
                lambda done: bar.update(task, completed=done)))
        return totals.summary()

    if out is None:
        summary = run(sys.stdout.buffer)
        sys.stdout.flush()
    else:
        with out.open("wb") as sink:
            summary = run(sink)
    err.print(summary, highlight=False)


async def write_ledger_report(settings: Settings, request: LedgerRequest, table: LedgerTable,
                              lines: list[LedgerLine | LineError], sink: BinaryIO,
                              progress: Callable[[int], None]) -> LedgerTotals:
    """The report written to `sink`; `progress(lines checked)` after every chunk."""
    totals = LedgerTotals()
    async with open_services(settings) as services:
        checker = LineChecker(services.resilience, REQUESTER,
                              facts=AnswerFacts.of(settings, services.registry))
        async with contextlib.aclosing(ledger.render(request, table, lines, checker,
                                              totals)) as chunks:
            async for chunk in chunks:
                sink.write(chunk)
                progress(totals.lines)
    return totals
