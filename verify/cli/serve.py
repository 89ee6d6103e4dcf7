"""`invoice-verify serve` (the HTTP service) and `invoice-verify demo` (generated invoices
loaded into the embedded store, and lookups that work on them)."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import urlencode

import typer
from aiohttp import web

from indexer.package import package_from_json
from indexer.registry import parse_registry_json
from verify.app import create_app
from verify.cli.common import DataDir, err, load_settings, open_intake, out, progress_bar
from verify.cli.heap import freeze_startup_heap
from verify.demo import DemoPlan, build_demo, example_queries
from verify.http.logs import AccessLogger, configure_logging
from verify.settings import Settings, SettingsError


async def _load_demo(settings: Settings, plan: DemoPlan) -> tuple[int, int]:
    accepted = rejected = 0
    async with open_intake(settings) as intake:
        assert intake.registry is not None
        await intake.registry.import_registry(parse_registry_json(plan.registry))
        with progress_bar() as bar:
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
    out.print(
        "[bold]Example lookups[/] (with the service running; the admin key is written to "
        f"{settings.admin_key_path} on the first start):"
    )
    out.print(f"  export INVOICE_KEY=$(cat {settings.admin_key_path})", highlight=False)
    for title, query in example_queries(plan):
        out.print(f"  # {title}")
        auth = '-H "Authorization: Bearer $INVOICE_KEY"'
        out.print(f"  curl -s {auth} '{base}?{urlencode(query)}'", soft_wrap=True, highlight=False)


def demo(
    data_dir: DataDir = None,
    per_series: Annotated[int, typer.Option(min=100, help="invoices per series")] = 2500,
    seed: Annotated[int, typer.Option(help="random seed of the generator")] = 20221515,
) -> None:
    """Load realistic generated invoices into the embedded store and print working lookups."""
    settings = load_settings(data_dir=data_dir)
    plan = build_demo(seed=seed, per_series=per_series)
    accepted, rejected = asyncio.run(_load_demo(settings, plan))
    out.print(
        f"demo data in {settings.sqlite_path}: {accepted} items accepted, "
        f"{rejected} rejected in this run ({plan.invoice_count} invoices generated; "
        "already-loaded packages are skipped)"
    )
    if rejected:
        err.print("[red]some demo items were rejected: the generator and the rules disagree[/]")
        raise typer.Exit(1)
    _print_examples(settings, plan)


async def _freeze_heap(_app: web.Application) -> None:
    freeze_startup_heap()


def serve(
    host: Annotated[str | None, typer.Option(help="[env INVOICE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="[env INVOICE_PORT]")] = None,
    data_dir: DataDir = None,
    with_demo: Annotated[bool, typer.Option("--demo", help="load demo data first")] = False,
    insecure_local: Annotated[
        bool | None,
        typer.Option(
            "--insecure-local",
            help="no API keys (loopback only) [env INVOICE_INSECURE_LOCAL]",
        ),
    ] = None,
) -> None:
    """Run the HTTP service (embedded SQLite default unless INVOICE_ES_URL is set)."""
    settings = load_settings(host=host, port=port, data_dir=data_dir, insecure_local=insecure_local)
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
        err.print(
            "[bold red]insecure local mode: no API keys are checked; every caller is "
            "admin. Listening on loopback only.[/]"
        )
    else:
        err.print(
            f"[bold]API keys are required.[/] The first admin key is in "
            f"{settings.admin_key_path} (created on the first start); manage keys with "
            "`invoice-verify keys`."
        )
    application.on_startup.append(_freeze_heap)  # after every cleanup_ctx has opened
    web.run_app(
        application,
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        shutdown_timeout=10,
        print=lambda msg: err.print(msg, highlight=False),
    )
