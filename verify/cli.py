"""`invoice-verify`: serve, ingest, demo. One entry point; settings come from the environment
and explicit options override them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO
from urllib.parse import urlencode

import typer
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fallback.outages import OutageError, OutageWindow, System
from indexer.intake import Intake
from indexer.ledger_file import LedgerFileError
from indexer.package import Package, PackageError, package_from_json, parse_json_package
from indexer.recheck import month_bounds, recheck_month
from indexer.registry import RegistryError, parse_registry, parse_registry_json
from indexer.rules import RULES, Violation, rules_markdown
from indexer.signature import TrustAnchors, seller_signature_violations
from indexer.vn_xml import parse_xml_package
from verify.access.apikeys import ApiKeyError, KeyRecord, KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.demo import DemoPlan, build_demo, example_queries
from verify.heap import freeze_startup_heap
from verify.http.csv_cells import dict_writer
from verify.http.errors import ApiError
from verify.http.logs import AccessLogger, configure_logging
from verify.ledger_cli import cli_verifier, write_ledger_report
from verify.lookup.batch import CSV_COLUMNS, answer_rows, csv_row, parse_rows
from verify.reconcile_cli import journal_app, run_loop, run_once
from verify.reports.ledger import file_error, ledger_request, read_lines
from verify.reports.missing import Totals, missing_request, render
from verify.reports.outage_gaps import outage_gaps
from verify.reports.query import Period, report_day
from verify.services import open_services
from verify.settings import Settings, SettingsError

app = typer.Typer(help="Verify Vietnamese and Chinese e-invoices.", no_args_is_help=True,
                  add_completion=False)
# soft_wrap: long lines (curl commands, file paths) stay whole, so they can be copied.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                                                                  "[env INVOICE_DATA_DIR]")]


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env().with_overrides(**overrides)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


@contextlib.asynccontextmanager
async def _intake(settings: Settings) -> AsyncIterator[Intake]:
    """The same intake the service runs (`verify.services`): invoice store plus the
    registry's rules, and the originals store, so XML ingested from files keeps its originals
    as the endpoint does."""
    async with open_services(settings) as services:
        yield services.intake


async def _load_demo(settings: Settings, plan: DemoPlan) -> tuple[int, int]:
    accepted = rejected = 0
    async with _intake(settings) as intake:
        assert intake.registry is not None
        await intake.registry.import_registry(parse_registry_json(plan.registry))
        with _progress() as bar:
            task = bar.add_task("loading demo packages", total=len(plan.packages))
            for raw in plan.packages:
                result = await intake.ingest(package_from_json(raw, max_items=10**6))
                if not result.replayed:
                    accepted += result.notice["accepted"]
                    rejected += result.notice["rejected"]
                bar.advance(task)
    return accepted, rejected


def _print_examples(settings: Settings, plan: DemoPlan) -> None:
    base = f"http://{settings.host}:{settings.port}/api/v1/invoices/lookup"
    out.print("[bold]Example lookups[/] (with the service running; the admin key is written to "
              f"{settings.admin_key_path} on the first start):")
    out.print(f"  export INVOICE_KEY=$(cat {settings.admin_key_path})", highlight=False)
    for title, query in example_queries(plan):
        out.print(f"  # {title}")
        auth = '-H "Authorization: Bearer $INVOICE_KEY"'
        out.print(f"  curl -s {auth} '{base}?{urlencode(query)}'", soft_wrap=True,
                  highlight=False)


@app.command()
def demo(data_dir: DataDir = None,
         per_series: Annotated[int, typer.Option(min=100, help="invoices per series")] = 2500,
         seed: Annotated[int, typer.Option(help="random seed of the generator")] = 20221515,
         ) -> None:
    """Load realistic generated invoices into the embedded store and print working lookups."""
    settings = _settings(data_dir=data_dir)
    plan = build_demo(seed=seed, per_series=per_series)
    accepted, rejected = asyncio.run(_load_demo(settings, plan))
    out.print(f"demo data in {settings.sqlite_path}: {accepted} items accepted, "
              f"{rejected} rejected in this run ({plan.invoice_count} invoices generated; "
              "already-loaded packages are skipped)")
    if rejected:
        err.print("[red]some demo items were rejected: the generator and the rules disagree[/]")
        raise typer.Exit(1)
    _print_examples(settings, plan)


async def _freeze_heap(_app: web.Application) -> None:
    freeze_startup_heap()


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="[env INVOICE_HOST]")] = None,
          port: Annotated[int | None, typer.Option(help="[env INVOICE_PORT]")] = None,
          data_dir: DataDir = None,
          with_demo: Annotated[bool, typer.Option("--demo", help="load demo data first")] = False,
          insecure_local: Annotated[bool | None, typer.Option(
              "--insecure-local", help="no API keys (loopback only) [env INVOICE_INSECURE_LOCAL]",
          )] = None,
          ) -> None:
    """Run the HTTP service (embedded SQLite default unless INVOICE_ES_URL is set)."""
    settings = _settings(host=host, port=port, data_dir=data_dir, insecure_local=insecure_local)
    configure_logging(settings.log_level, settings.log_format)
    if with_demo:
        plan = build_demo()
        asyncio.run(_load_demo(settings, plan))
        _print_examples(settings, plan)
    try:
        application = create_app(settings)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    if settings.insecure_local:
        err.print("[bold red]insecure local mode: no API keys are checked; every caller is "
                  "admin. Listening on loopback only.[/]")
    else:
        err.print(f"[bold]API keys are required.[/] The first admin key is in "
                  f"{settings.admin_key_path} (created on the first start); manage keys with "
                  "`invoice-verify keys`.")
    application.on_startup.append(_freeze_heap)  # after every cleanup_ctx has opened
    web.run_app(application, host=settings.host, port=settings.port,
                access_log_class=AccessLogger, shutdown_timeout=10,
                print=lambda msg: err.print(msg, highlight=False))


def _read_package(path: Path, settings: Settings, anchors: TrustAnchors,
                  ) -> tuple[Package, dict[int, bytes], dict[int, list[Violation]]]:
    """A `.xml` file is a Vietnamese TDiep package, taken like `POST /packages` with
    application/xml: originals kept, seller signatures checked when trust anchors are
    configured (in line: this command serves no one else meanwhile). Other files are JSON."""
    body = path.read_bytes()
    if path.suffix.lower() != ".xml":
        return parse_json_package(body, max_items=settings.max_package_items), {}, {}
    parsed = parse_xml_package(body, max_items=settings.max_package_items)
    signatures = seller_signature_violations(parsed.package, parsed.originals, anchors,
                                             settings.rules)
    return parsed.package, parsed.originals, signatures


async def _ingest(settings: Settings, files: list[Path],
                  anchors: TrustAnchors | None = None) -> int:
    failures = 0
    async with _intake(settings) as intake:
        with _progress() as bar:
            task = bar.add_task("ingesting", total=len(files))
            for path in files:
                try:
                    package, originals, signatures = _read_package(
                        path, settings, anchors or TrustAnchors.none())
                    result = await intake.ingest(package, originals, signatures)
                except (OSError, PackageError) as exc:
                    failures += 1
                    code = getattr(exc, "code", "file_unreadable")
                    bar.console.print(f"[red]{path}: {code}: {exc}[/]", highlight=False)
                else:
                    notice = result.notice
                    state = "already ingested" if result.replayed else notice["result"]
                    bar.console.print(f"{path}: {notice['package_id']} {state}: "
                                      f"{notice['accepted']} accepted, "
                                      f"{notice['rejected']} rejected", highlight=False)
                    for item in notice["items"]:
                        for error in item["errors"]:
                            bar.console.print(f"  item {item['index']}: {error['rule']}: "
                                              f"{error['message']}", highlight=False)
                bar.advance(task)
    return failures


@app.command()
def ingest(files: Annotated[list[Path], typer.Argument(
               help="package files: JSON, or Vietnamese XML (TDiep) named *.xml")],
           data_dir: DataDir = None) -> None:
    """Ingest JSON or XML packages from files, like POST /api/v1/packages; exit 1 if a file
    failed."""
    settings = _settings(data_dir=data_dir)
    try:
        anchors = settings.load_trust_anchors()
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    failures = asyncio.run(_ingest(settings, files, anchors))
    if failures:
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(batch: Annotated[Path, typer.Option(
                   "--batch", help="CSV (one column per lookup parameter) or JSON list")],
               out: Annotated[Path | None, typer.Option(
                   help="CSV of answers (default: standard output)")] = None,
               data_dir: DataDir = None) -> None:
    """Verify a batch of invoices as POST /api/v1/verify/batch does (the intake journal, the
    primary, the replica and the outage windows of the data directory); one CSV row per
    input row. A miss that cannot be confirmed records its gap (requester `cli`)."""
    settings = _settings(data_dir=data_dir)
    content_type = "text/csv" if batch.suffix.lower() == ".csv" else "application/json"
    try:
        rows = parse_rows(batch.read_bytes(), content_type)
    except OSError as exc:
        err.print(f"[red]{batch}: {exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    except ApiError as exc:
        err.print(f"[red]{batch}: {exc.code}: {exc.message}[/]", highlight=False)
        raise typer.Exit(1) from None

    async def run(sink: TextIO) -> Counter[str]:
        writer = dict_writer(sink, CSV_COLUMNS)
        writer.writeheader()
        tally: Counter[str] = Counter()
        async with open_services(settings) as services:
            with _progress() as bar:
                task = bar.add_task("verifying", total=len(rows))
                async for result in answer_rows(rows, settings.rules,
                                                cli_verifier(services.resilience)):
                    writer.writerow(csv_row(result))
                    tally[result.get("status") or result["error"]["code"]] += 1
                    bar.advance(task)
        return tally

    if out is None:
        tally = asyncio.run(run(sys.stdout))
    else:
        with out.open("w", newline="", encoding="utf-8") as sink:
            tally = asyncio.run(run(sink))
    err.print(f"{len(rows)} rows: " + ", ".join(f"{k} {n}" for k, n in tally.most_common()),
              highlight=False)


@app.command("recheck")
def recheck_cmd(month: Annotated[str, typer.Option(help="YYYY-MM, the month to re-check")],
                out: Annotated[Path | None, typer.Option(
                    help="CSV report (default: standard output)")] = None,
                data_dir: DataDir = None) -> None:
    """Step 2 over a month, as the authority's day 1-10 run: registrations and the invoice
    chain re-checked against what is known now. Exit 1 if anything was found."""
    settings = _settings(data_dir=data_dir)
    try:
        month_bounds(month)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def run(sink: TextIO) -> tuple[int, int]:
        writer = dict_writer(sink, ["id", "rule", "message", "detail"])
        writer.writeheader()
        checked = found = 0
        async with _intake(settings) as intake:
            with _progress() as bar:
                task = bar.add_task(f"re-checking {month}", total=None)
                async for checked, findings in recheck_month(intake.store, intake.registry,
                                                             month, settings.rules):
                    for finding in findings:
                        writer.writerow(finding.as_dict())
                    found += len(findings)
                    bar.update(task, completed=checked)
        return checked, found

    if out is None:
        checked, found = asyncio.run(run(sys.stdout))
    else:
        with out.open("w", newline="", encoding="utf-8") as sink:
            checked, found = asyncio.run(run(sink))
    err.print(f"{checked} invoices issued in {month} re-checked: {found} findings",
              highlight=False)
    if found:
        raise typer.Exit(1)


@app.command("rules")
def list_rules(as_json: Annotated[bool, typer.Option("--json")] = False,
               markdown: Annotated[bool, typer.Option(
                   "--markdown", help="the docs/rules.md table")] = False) -> None:
    """List every intake rule with its code, severity in force and spec section."""
    if markdown:
        sys.stdout.write(rules_markdown())
        return

    cfg = _settings().rules
    rows = [{"rule": r.code, "severity": cfg.severity_of(r.code).value,
             "confirmed": r.confirmed, "configurable": r.configurable, "spec": r.spec,
             "message": r.message_en}
            for r in RULES.values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    for row in rows:
        flag = "" if row["confirmed"] else " (unconfirmed)"
        out.print(f"{row['rule']:<40} {row['severity']:<8} {row['spec']}{flag}", highlight=False)


registry_app = typer.Typer(help="The taxpayer and provider registry the intake rules read.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("import")
def registry_import(file: Annotated[Path, typer.Argument(help="registry .json or .csv")],
                    data_dir: DataDir = None) -> None:
    """Import (upsert) taxpayers and providers; a file with any error changes nothing."""
    settings = _settings(data_dir=data_dir)
    content_type = "text/csv" if file.suffix.lower() == ".csv" else "application/json"
    try:
        parsed = parse_registry(file.read_bytes(), content_type)
    except (OSError, RegistryError) as exc:
        err.print(f"[red]{file}: {exc}[/]", highlight=False)
        raise typer.Exit(1) from None

    async def load() -> dict[str, int]:
        async with open_services(settings) as services:  # Elasticsearch when configured
            await services.registry.import_registry(parsed)
            return await services.registry.counts()

    totals = asyncio.run(load())
    out.print(f"imported {len(parsed.taxpayers)} taxpayers and {len(parsed.providers)} "
              f"providers; the registry now holds {totals['taxpayers']} taxpayers and "
              f"{totals['providers']} providers", highlight=False)


keys_app = typer.Typer(help="Create, list and revoke API keys (in the data directory).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(journal_app, name="journal")


@contextlib.asynccontextmanager
async def _key_store(settings: Settings) -> AsyncIterator[KeyStore]:
    async with open_access_db(settings.access_path) as conn:
        yield KeyStore(conn)


@keys_app.command("create")
def keys_create(role: Annotated[Role, typer.Option(help="intake, verify, audit or admin")],
                scope: Annotated[list[str] | None, typer.Option(
                    help="tax id (provider id for intake) the key is limited to; repeatable")
                ] = None,
                name: Annotated[str, typer.Option(help="who or what holds the key")] = "",
                data_dir: DataDir = None) -> None:
    """Create a key and print its token (shown once; only a hash is stored)."""
    settings = _settings(data_dir=data_dir)

    async def create() -> tuple[str, KeyRecord]:
        async with _key_store(settings) as keys:
            return await keys.create(role, scope or [], name, created_by="cli")

    try:
        token, record = asyncio.run(create())
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    err.print(f"created {record.role.value} key {record.key_id}; the token is shown once:")
    sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (ids, roles, scopes; never secrets)."""
    settings = _settings(data_dir=data_dir)

    async def listing() -> list[KeyRecord]:
        async with _key_store(settings) as keys:
            return await keys.list()

    sys.stdout.write(json.dumps([r.public() for r in asyncio.run(listing())],
                                ensure_ascii=False, indent=2) + "\n")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by id (takes effect within the key cache time, 5 s)."""
    settings = _settings(data_dir=data_dir)

    async def revoke() -> KeyRecord:
        async with _key_store(settings) as keys:
            return await keys.revoke(key_id)

    try:
        record = asyncio.run(revoke())
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    out.print(f"revoked {record.key_id} ({record.role.value}) at {record.revoked_at}")


report_app = typer.Typer(help="Reports for auditors, from the primary index.",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")


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
    settings = _settings(data_dir=data_dir)
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
            with _progress() as bar:
                task = bar.add_task("numbers checked", total=None)
                async with contextlib.aclosing(render(request, services.store, totals,
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
    settings = _settings(data_dir=data_dir)
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
        with _progress() as bar:
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


@app.command("reconcile")
def reconcile_cmd(
        loop: Annotated[bool, typer.Option(
            "--loop", help="keep running: reconcile whenever the primary is usable and there "
                           "is work (the compose reconciler)")] = False,
        interval: Annotated[float | None, typer.Option(
            help="seconds between checks in --loop [env INVOICE_RECONCILE_INTERVAL_SECONDS]",
            min=0.1)] = None,
        heartbeat: Annotated[Path | None, typer.Option(
            help="with --loop: file touched after every check, for health checks")] = None,
        data_dir: DataDir = None) -> None:
    """Drain the intake journal into the primary, re-check every open gap (found or, after
    the grace period, missing), deliver callbacks (POST /api/v1/reconcile does the same).
    Exit 1 if the primary failed and work was left."""
    settings = _settings(data_dir=data_dir)
    if loop:
        run_loop(settings, heartbeat,
                 interval or float(settings.fallback.reconcile_interval_seconds))
        return
    with _progress() as bar:
        result = run_once(settings, bar)
    err.print(f"journal: {result.journal_applied} of {result.journal_total} entries applied; "
              f"gaps: {result.gaps_found} found, {result.gaps_missing} missing, "
              f"{result.gaps_waiting} waiting for the grace period; callbacks: "
              f"{result.callbacks_sent} sent, {result.callbacks_failed} failed "
              f"({result.seconds} s)", highlight=False)
    if result.stopped_by:
        err.print(f"[red]stopped: {result.stopped_by}[/]", highlight=False)
        raise typer.Exit(1)


outage_app = typer.Typer(help="Outage windows: declare maintenance or an authority outage, "
                         "list them (in the data directory).", no_args_is_help=True)
app.add_typer(outage_app, name="outage")


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
    settings = _settings(data_dir=data_dir)
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
    settings = _settings(data_dir=data_dir)

    async def listing() -> list[OutageWindow]:
        windows: list[OutageWindow] = []
        async with open_services(settings) as services:
            while page := await services.outages.list(after=windows[-1].id if windows else 0,
                                         limit=1000):
                windows.extend(page)
        return windows

    sys.stdout.write(json.dumps([w.as_dict() for w in asyncio.run(listing())],
                                ensure_ascii=False, indent=2) + "\n")


def main() -> None:
    app()
